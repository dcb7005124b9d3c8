#!/bin/sh
# Link launcher for the static msb-agent: drops shared libraries from the link line.
# Why: msb_base uses spdlog's header-only target, whose interface still names the shared
# libfmt.so although FMT_HEADER_ONLY leaves no reference to it; `-static` refuses any .so.
for arg in "$@"; do
  shift
  case "$arg" in
    *.so|*.so.*) ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec "$@"
