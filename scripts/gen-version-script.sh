#!/usr/bin/env bash
# Writes the linker version script for libusertcp.so: every interposed libc symbol (cshim/intercept.def) and the
# extra exports (cshim/exports.extra) global and UNVERSIONED, everything else local.
# Why unversioned: a versioned definition (read@@V1.0) does not satisfy a program's reference to read@GLIBC_2.2.5,
# so the dynamic linker would bind the program to libc and skip usertcp without a word.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: gen-version-script.sh OUTPUT}
{
  echo "{"
  echo "  global:"
  printf '#define UT_X(ret, name, params, args, sysno) name\n#include "intercept.def"\n' \
    | gcc -E -P -I "$here/cshim" -x c - | grep -v '^\s*$' | sed 's/^/    /; s/$/;/'
  grep -v '^\s*#' "$here/cshim/exports.extra" | grep -v '^\s*$' | sed 's/^/    /; s/$/;/'
  echo "  local: *;"
  echo "};"
} > "$out.tmp"
mv "$out.tmp" "$out"
