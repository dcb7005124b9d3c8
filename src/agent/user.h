// User resolution against a root's /etc/passwd and /etc/group, parsed by hand: NSS in a static
// glibc binary is unreliable, and the files of the sandbox's root are what count.
//
//   auto user = TRY(resolve_user(UserSpec{"1000", "users"}, "/"));
//   // user.uid, user.gid, user.groups, user.home
//
// Rules (those of container runtimes): a name must exist in passwd; a numeric uid need not (its
// gid then defaults to 0 and HOME to "/"); a group, when given, replaces the primary group and
// must exist when it is a name; supplementary groups are the groups listing the user by name.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "agent/guest_config.h"
#include "base/result.h"

namespace msb::agent {

struct ResolvedUser {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups (primary included)
    std::string name;           // empty for a uid not in passwd
    std::string home = "/";
    std::string shell = "/bin/sh";
};

// Resolves `spec` against the given file contents.
Result<ResolvedUser> resolve_user(const UserSpec& spec, std::string_view passwd,
                                  std::string_view group);
// Reads <root>/etc/passwd and <root>/etc/group (missing files count as empty) and resolves.
Result<ResolvedUser> resolve_user_in_root(const UserSpec& spec, const std::string& root = "/");

// The user processes run as when nobody names one: root.
ResolvedUser root_user();

}  // namespace msb::agent
