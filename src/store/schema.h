// Versioned schema of the msb store (ARCHITECTURE.md "Store"; same tables and columns as
// microsandbox 0.4.3's sandbox/run/sandbox_metric). The applied version is PRAGMA user_version.
#pragma once

#include "base/result.h"

namespace msb::store {

class Database;

// The version migrate() brings a database to.
int latest_schema_version();

// Applies every migration newer than the database's user_version, all inside one
// BEGIN IMMEDIATE transaction (so concurrent openers serialise and the second one finds
// nothing to do). Applying it again is a no-op. Tables are created IF NOT EXISTS, so a store
// written by microsandbox 0.4.3 (user_version 0, same tables) is adopted as is.
Status migrate(Database& db);

}  // namespace msb::store
