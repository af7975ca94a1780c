#!/usr/bin/env bash
# The sealed ABI: libflash2ambient.so exports exactly the functions flash2ambient.h
# declares (no kernel, no internal helper, no Swift symbol) and is named by its SONAME.
# Usage: check_exports.sh LIBRARY HEADER   (run by `make test-capi`)
set -euo pipefail
lib="$1" header="$2"
CC="${CC:-cc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Declarations from the preprocessed header (comments and the C++ guard gone), one
# statement per line; typedefs (the progress callback) are not functions.
"$CC" -E -P -x c "$header" | tr '\n' ' ' | tr ';' '\n' | grep -vE '^[[:space:]]*typedef' |
	grep -oE '^[^(]*\bf2a_[a-z0-9_]+[[:space:]]*\(' | sed -E 's/.*\b(f2a_[a-z0-9_]+)[[:space:]]*\($/\1/' | sort -u >"$tmp/header"
nm -D --defined-only "$lib" | awk '{ print $NF }' | sort -u >"$tmp/library"

status=0
if [ "$(wc -l <"$tmp/header")" -lt 10 ]; then
	echo "FAIL: found only $(wc -l <"$tmp/header") function declarations in $header"; status=1
fi
if ! diff -u --label "declared in $header" --label "exported by $lib" "$tmp/header" "$tmp/library"; then
	echo "FAIL: the exported symbols differ from the header's functions (Sources/Flash2Ambient/exports.map)"; status=1
fi
soname="$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
if [ "$soname" != libflash2ambient.so.0 ]; then
	echo "FAIL: SONAME is '$soname', expected libflash2ambient.so.0"; status=1
fi
[ $status = 0 ] && echo "exports: $(wc -l <"$tmp/library") functions, exactly the header's; SONAME $soname"
exit $status
