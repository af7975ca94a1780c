#!/usr/bin/env bash
# Tests of the binary tarball and of `make install` (run by `make test-dist`).
#   packaging/test-dist.sh TARBALL VERSION
# Unpacks TARBALL into a temporary directory outside the repository, moves it to another name
# and uses it the way a cluster node or container would, with a plain environment: f2a apply on
# the bundled example, f2a-train, `vips flash2ambient` through VIPSHOME, a C program built with
# the unpacked pkg-config file, the vips C example, man pages and completions; checks the
# library's version links and what the binaries still need from the system; checks that
# packaging/Containerfile matches the tarball's name and layout (no container engine needed).
# Then `make install` with PREFIX (nothing outside it; as an unprivileged user when possible) and
# with DESTDIR gives the same tree, and `make uninstall` removes it.
# Prints one line per check and "test-dist: N passed, M failed" (Tests/lib/checks.sh); exits 1 on
# failures. The temporary directory is removed unless a check failed.
set -u

TARBALL="$(readlink -f "$1")"
VERSION="$2"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SOMAJOR="${VERSION%%.*}"
NAME="$(basename "$TARBALL" .tar.gz)"
. "$ROOT/Tests/lib/checks.sh"
checks_workdir f2a-test-dist
T="$W"
chmod 755 "$T" # the unprivileged install below reads it
# A plain environment: no F2A_*, VIPSHOME, LD_LIBRARY_PATH or PKG_CONFIG_PATH from the caller.
plain() { env -i PATH=/usr/bin:/bin HOME="$T" LANG=C.UTF-8 "$@"; }
# ldd_clean FILE: every library found, no Swift runtime, nothing from the source tree.
ldd_clean() { local out; out="$(ldd "$1")" && ! echo "$out" | grep -E "not found|libswift|libFoundation|$ROOT"; }
# origin_rpath FILE: every RUNPATH/RPATH entry is relative to $ORIGIN.
origin_rpath() { ! readelf -d "$1" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\]/\2/p' | tr ':' '\n' | grep -v '^\$ORIGIN'; }
# tree DIR: the files and links below DIR (the installed layout)
tree() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | grep -v '^share/doc/flash2ambient/Containerfile$' | sort); }
export -f plain ldd_clean origin_rpath tree
export T ROOT

# --- unpack elsewhere, under another name ------------------------------------------------------
mkdir -p "$T/unpack" "$T/node"
if ! tar -xzf "$TARBALL" -C "$T/unpack"; then fail "tar -xzf $TARBALL"; checks_summary test-dist; exit 1; fi
check "the tarball holds one directory, $NAME" bash -c "[ \"\$(ls '$T/unpack')\" = '$NAME' ]"
P="$T/node/flash2ambient"               # moved: nothing may depend on where it was unpacked
mv "$T/unpack/$NAME" "$P"
cd "$T/node" || exit 1

for f in bin/f2a bin/f2a-train lib/libflash2ambient.so.$VERSION include/flash2ambient.h \
	include/vips-flash2ambient.h lib/pkgconfig/flash2ambient.pc share/flash2ambient/weights/default.f2aw \
	lib/flash2ambient/link-vips-modules share/man/man1/f2a.1 share/man/man1/f2a-train.1 \
	share/bash-completion/completions/f2a share/zsh/site-functions/_f2a share/fish/vendor_completions.d/f2a.fish \
	share/bash-completion/completions/f2a-train share/doc/flash2ambient/README.md \
	share/doc/flash2ambient/weights/MODEL_CARD.md share/doc/flash2ambient/examples/flash.jpg \
	share/doc/flash2ambient/examples/ATTRIBUTION.md share/doc/flash2ambient/Containerfile; do
	[ -f "$P/$f" ] || fail "missing $f"
done
MODULE="$(ls "$P"/lib/flash2ambient/vipshome/*/vips-modules-*/vips-flash2ambient.so 2>/dev/null | head -1)"
check "vips module at lib/flash2ambient/vipshome/<multiarch>/vips-modules-X.Y" test -f "$MODULE"

# --- the library: version links, SONAME ---------------------------------------------------------
check "lib/libflash2ambient.so -> .so.$SOMAJOR -> .so.$VERSION" bash -c \
	"[ \"\$(readlink '$P/lib/libflash2ambient.so')\" = libflash2ambient.so.$SOMAJOR ] &&
	 [ \"\$(readlink '$P/lib/libflash2ambient.so.$SOMAJOR')\" = libflash2ambient.so.$VERSION ]"
SONAME="$(readelf -d "$P/lib/libflash2ambient.so.$VERSION" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
if [ -z "$SONAME" ]; then
	echo "note  libflash2ambient.so has no SONAME yet: programs record NEEDED libflash2ambient.so"
else
	check "SONAME is libflash2ambient.so.$SOMAJOR (the link's name)" [ "$SONAME" = "libflash2ambient.so.$SOMAJOR" ]
fi

# --- what the binaries need: system libraries only, no Swift runtime, nothing from the build ----
for f in bin/f2a bin/f2a-train "lib/libflash2ambient.so.$VERSION" "${MODULE#"$P/"}"; do
	check "ldd $f: every library found, no Swift runtime, nothing from the source tree" ldd_clean "$P/$f"
	check "$f: RUNPATH only \$ORIGIN-relative" origin_rpath "$P/$f"
done
echo "info  NEEDED by bin/f2a: $(readelf -d "$P/bin/f2a" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
echo "info  NEEDED by libflash2ambient: $(readelf -d "$P/lib/libflash2ambient.so.$VERSION" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

# --- the tools, from the unpacked tree, with a plain environment ---------------------------------
EXAMPLE="$P/share/doc/flash2ambient/examples/flash.jpg"
check "bin/f2a --version is $VERSION" bash -c "[ \"\$(env -i '$P/bin/f2a' --version | head -1)\" = '$VERSION' ]"
check "bin/f2a info finds the bundled weights (no --model)" bash -c \
	"env -i '$P/bin/f2a' info | grep -qxF 'file:        $P/share/flash2ambient/weights/default.f2aw'"
check "bin/f2a apply on the bundled example" bash -c \
	"env -i PATH=/usr/bin:/bin '$P/bin/f2a' apply '$EXAMPLE' out-f2a.jpg &&
	 [ \"\$(vipsheader -f width out-f2a.jpg)x\$(vipsheader -f height out-f2a.jpg)\" = \"\$(vipsheader -f width '$EXAMPLE')x\$(vipsheader -f height '$EXAMPLE')\" ]"
check "bin/f2a-train --help runs" bash -c "env -i '$P/bin/f2a-train' --help | grep -q 'USAGE: f2a-train'"

# --- libvips: VIPSHOME = lib/flash2ambient/vipshome ---------------------------------------------
VH="$P/lib/flash2ambient/vipshome"
check "VIPSHOME=lib/flash2ambient/vipshome: vips -l lists flash2ambient, stock modules still load" bash -c \
	"out=\$(plain VIPSHOME='$VH' vips -l 2>&1) && echo \"\$out\" | grep -q '(flash2ambient)' &&
	 echo \"\$out\" | grep -q heifsave && ! echo \"\$out\" | grep -q 'unable to load'"
check "vips flash2ambient on the bundled example equals f2a apply (within 1/255)" bash -c \
	"plain VIPSHOME='$VH' vips flash2ambient '$EXAMPLE' out-vips.png &&
	 plain '$P/bin/f2a' apply '$EXAMPLE' out-f2a.png &&
	 plain vips subtract out-vips.png out-f2a.png d.v && plain vips abs d.v a.v &&
	 [ \"\$(printf '%.0f' \"\$(plain vips max a.v)\")\" -le 1 ]"
check "link-vips-modules re-links the stock modules (idempotent)" bash -c \
	"plain '$P/lib/flash2ambient/link-vips-modules' && plain VIPSHOME='$VH' vips -l | grep -q heifsave"

# --- C: the unpacked pkg-config file --------------------------------------------------------------
PC="env PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config"
check "pkg-config: prefix is the unpacked tree, vipshome variable" bash -c \
	"[ \"\$(readlink -f \"\$($PC --variable=prefix flash2ambient)\")\" = '$P' ] &&
	 [ \"\$(readlink -f \"\$($PC --variable=vipshome flash2ambient)\")\" = '$VH' ] &&
	 [ \"\$($PC --modversion flash2ambient)\" = '$VERSION' ]"
cat > app.c <<'EOF'
#include <flash2ambient.h>
#include <stdio.h>
int main(void) {
    f2a_model *model = NULL;
    if (f2a_model_load(NULL, &model) != F2A_OK) { fprintf(stderr, "%s\n", f2a_last_error()); return 1; }
    float rgb[32 * 24 * 3];
    for (int i = 0; i < 32 * 24 * 3; i++) rgb[i] = (float) (i % 97) / 96.0f;
    f2a_params params = f2a_default_params();
    f2a_status st = f2a_apply_f32(model, rgb, 32 * 12, rgb, 32 * 12, 32, 24, &params);
    if (st != F2A_OK) { fprintf(stderr, "%s\n", f2a_last_error()); return 1; }
    f2a_model_free(model);
    printf("%s\n", f2a_default_model_path());
    return 0;
}
EOF
check "cc app.c \$(pkg-config --cflags --libs flash2ambient), rpath = libdir; runs, finds the weights" bash -c \
	"cc -std=c11 -Wall -Werror -o app app.c \$($PC --cflags --libs flash2ambient) \
	   -Wl,-rpath,\"\$($PC --variable=libdir flash2ambient)\" &&
	 [ \"\$(readlink -f \"\$(env -i ./app)\")\" = '$P/share/flash2ambient/weights/default.f2aw' ]"
if [ -n "$SONAME" ]; then
	check "the program records NEEDED $SONAME" bash -c "readelf -d app | grep -q 'NEEDED.*\\[$SONAME\\]'"
fi
check "vips C example (share/doc/.../examples/vips) built with pkg-config flash2ambient vips, run with VIPSHOME" bash -c \
	"cc -o vips-example '$P/share/doc/flash2ambient/examples/vips/flash2ambient_example.c' \
	   \$($PC --cflags flash2ambient) \$(pkg-config --cflags --libs vips) &&
	 plain VIPSHOME='$VH' ./vips-example '$EXAMPLE' out-c.jpg 0.8 && vipsheader out-c.jpg"

# --- man pages, completions -----------------------------------------------------------------------
check "man pages: f2a(1), f2a-train(1), with the subcommands" bash -c \
	"grep -q '^.Dt F2A 1' '$P/share/man/man1/f2a.1' && grep -q '^.Dt F2A-TRAIN 1' '$P/share/man/man1/f2a-train.1' &&
	 grep -q 'batch' '$P/share/man/man1/f2a.1'"
if command -v man >/dev/null; then
	check "man -l renders f2a.1" bash -c "MANWIDTH=80 man -l '$P/share/man/man1/f2a.1' 2>/dev/null | grep -q 'f2a batch'"
fi
check "bash completions parse (bash -n) and define completion for f2a and f2a-train" bash -c \
	"bash -n '$P/share/bash-completion/completions/f2a' && bash -n '$P/share/bash-completion/completions/f2a-train' &&
	 grep -q 'complete .*f2a\$' '$P/share/bash-completion/completions/f2a'"
check "zsh and fish completions" bash -c \
	"head -1 '$P/share/zsh/site-functions/_f2a' | grep -q '^#compdef f2a' &&
	 grep -q \"^complete -c 'f2a' \" '$P/share/fish/vendor_completions.d/f2a.fish'"

# --- packaging/Containerfile against the tarball --------------------------------------------------
CF="$ROOT/packaging/Containerfile"
arg() { sed -n "s/^ARG $1=//p" "$CF"; }
CF_TARBALL="flash2ambient-$(arg VERSION)-linux-$(arg ARCH).tar.gz"
check "Containerfile ARG VERSION/ARCH name this tarball ($CF_TARBALL)" [ "$CF_TARBALL" = "$(basename "$TARBALL")" ]
check "Containerfile ADDs that tarball to /opt/" bash -c \
	"grep -qxF 'ADD flash2ambient-\${VERSION}-linux-\${ARCH}.tar.gz /opt/' '$CF'"
# The image's paths, with /opt/flash2ambient -> this unpacked tree.
check "Containerfile paths exist in the tarball (bin, link-vips-modules, VIPSHOME)" bash -c \
	"for p in \$(grep -oE '/opt/flash2ambient/[A-Za-z0-9_./-]+' '$CF' | sort -u); do
	   test -e '$P'\"\${p#/opt/flash2ambient}\" || { echo \"missing \$p\"; exit 1; }; done"
CF_VIPSHOME="$(sed -n 's|^ *VIPSHOME=/opt/flash2ambient\(/[^ ]*\).*|\1|p' "$CF" | tail -1)"
check "the image's environment (PATH, VIPSHOME) runs f2a batch and vips flash2ambient" bash -c \
	"mkdir -p in && cp '$EXAMPLE' in/ &&
	 env -i PATH='$P/bin':/usr/bin:/bin VIPSHOME='$P$CF_VIPSHOME' f2a batch in --output out-batch >/dev/null &&
	 test -s out-batch/flash.jpg &&
	 env -i PATH='$P/bin':/usr/bin:/bin VIPSHOME='$P$CF_VIPSHOME' vips flash2ambient '$EXAMPLE' out-cf.jpg"
check "docs/BATCH.md's Kubernetes recipe uses the image of packaging/Containerfile" bash -c \
	"grep -q 'packaging/Containerfile' '$ROOT/docs/BATCH.md' && grep -q 'image: registry.example.com/flash2ambient:$VERSION' '$ROOT/docs/BATCH.md'"

# --- make install: PREFIX (nothing outside it), DESTDIR; make uninstall ---------------------------
SYSMOD="$(pkg-config --variable=libdir vips)/vips-modules-$(pkg-config --modversion vips | cut -d. -f1,2)"
before="$(ls -la --time-style=full-iso "$SYSMOD" 2>&1)"
MAKE_INSTALL=(make -s -C "$ROOT" install-files install-plugin-files)
# As an unprivileged user when we are root and it can read the tree (a non-root install must work).
AS=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		test -r "$ROOT/Makefile" -a -r "$ROOT/build/bin/f2a" -a -r "$ROOT/build/lib/libflash2ambient.so" 2>/dev/null; then
	AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	mkdir -p "$T/home" && chown 65534:65534 "$T/home"
else
	mkdir -p "$T/home"
	[ "$(id -u)" = 0 ] && echo "note  the tree is not readable by uid 65534: make install PREFIX=... runs as root"
fi
check "make install PREFIX=\$HOME/.local${AS:+ (as uid 65534)}: the tarball's tree, nothing outside PREFIX" bash -c \
	"${AS[*]} ${MAKE_INSTALL[*]} PREFIX='$T/home/.local' >install.log 2>&1 || { cat install.log; exit 1; }
	 diff <(tree '$P') <(tree '$T/home/.local') &&
	 [ \"\$(ls -la --time-style=full-iso '$SYSMOD' 2>&1)\" = '$before' ]"
check "installed: f2a apply and vips flash2ambient with VIPSHOME from pkg-config" bash -c \
	"plain '$T/home/.local/bin/f2a' apply '$EXAMPLE' out-inst.jpg &&
	 vh=\$(PKG_CONFIG_PATH='$T/home/.local/lib/pkgconfig' pkg-config --variable=vipshome flash2ambient) &&
	 [ \"\$vh\" = '$T/home/.local/lib/flash2ambient/vipshome' ] &&
	 plain VIPSHOME=\"\$vh\" vips flash2ambient '$EXAMPLE' out-inst.png &&
	 grep -qx 'prefix=$T/home/.local' '$T/home/.local/lib/pkgconfig/flash2ambient.pc'"
check "make uninstall PREFIX=\$HOME/.local leaves no file" bash -c \
	"${AS[*]} make -s -C '$ROOT' uninstall PREFIX='$T/home/.local' >/dev/null &&
	 [ -z \"\$(find '$T/home/.local' \\( -type f -o -type l \\))\" ]"
check "make install DESTDIR=... PREFIX=/usr/local: the same tree under DESTDIR, pkg-config prefix /usr/local" bash -c \
	"${MAKE_INSTALL[*]} DESTDIR='$T/stage' PREFIX=/usr/local >/dev/null &&
	 diff <(tree '$P') <(tree '$T/stage/usr/local') &&
	 grep -qx 'prefix=/usr/local' '$T/stage/usr/local/lib/pkgconfig/flash2ambient.pc' &&
	 [ \"\$(ls -la --time-style=full-iso '$SYSMOD' 2>&1)\" = '$before' ]"
check "make install-system-module-files DESTDIR=...: module in libvips's directory, rpath PREFIX/lib; uninstall removes it" bash -c \
	"make -s -C '$ROOT' install-system-module-files DESTDIR='$T/stage' PREFIX=/usr/local >/dev/null &&
	 readelf -d '$T/stage$SYSMOD/vips-flash2ambient.so' | grep -q 'path: \\[/usr/local/lib\\]' &&
	 make -s -C '$ROOT' uninstall DESTDIR='$T/stage' PREFIX=/usr/local >/dev/null &&
	 [ -z \"\$(find '$T/stage' \\( -type f -o -type l \\))\" ]"

checks_summary test-dist
