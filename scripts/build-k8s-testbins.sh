#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager 1.20.2 from Debian bookworm's `kubernetes`
# source package (the only offline source of a real apiserver)
# and caches them outside the repository. Prints the directory holding the two binaries.
#
# The cache key is the orig tarball's sha256 plus the one patch we apply, so a changed source
# package or patch never reuses stale binaries. Re-running with a warm cache costs nothing.
set -euo pipefail

CACHE_ROOT="${FLYTE_SERVERLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flyte-serverless}"
PATCH_ID="reflect2-1.0.2"   # vendored reflect2 1.0.1 segfaults on Go >= 1.18 (first CR POST)
ORIG="kubernetes_1.20.5+really1.20.2.orig.tar.gz"

log() { echo "[build-k8s] $*" >&2; }

# Fast path: any completed build for this patch level.
for done_marker in "$CACHE_ROOT"/k8s-testbins/*-"$PATCH_ID"/.complete; do
  if [ -f "$done_marker" ]; then dirname "$done_marker"; exit 0; fi
done

# One build at a time per cache: setups running side by side (worktrees, parallel jobs) would
# otherwise unpack and compile in the same source tree. Whoever waits re-checks the fast path.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build.lock"
flock 9
for done_marker in "$CACHE_ROOT"/k8s-testbins/*-"$PATCH_ID"/.complete; do
  if [ -f "$done_marker" ]; then dirname "$done_marker"; exit 0; fi
done

need_pkgs=()
for pkg in golang-go etcd-server rsync golang-github-modern-go-reflect2-dev debian-archive-keyring dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
fi

# The deb-src entry points at the Debian mirror this machine already uses; it lives in its own
# list so the machine's apt configuration is left untouched.
mirror=$(grep -rhE '^URIs:' /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^deb .*bookworm main' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

work="$CACHE_ROOT/k8s-src"
mkdir -p "$work/apt/lists/partial"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" > "$work/apt/src.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/apt/src.list" -o "Dir::Etc::sourceparts=/nonexistent" -o "Dir::State::Lists=$work/apt/lists")
cd "$work"
if [ ! -f "$ORIG" ]; then
  log "downloading the kubernetes source package from $mirror"
  apt-get "${apt_opts[@]}" update -qq >&2
  apt-get "${apt_opts[@]}" source --download-only kubernetes >&2
fi
sha=$(sha256sum "$ORIG" | cut -c1-16)
out="$CACHE_ROOT/k8s-testbins/$sha-$PATCH_ID"

if [ ! -d kubernetes-1.20.2 ]; then
  log "unpacking"
  tar xzf "$ORIG"
  rm -rf kubernetes-1.20.2/vendor/github.com/modern-go/reflect2
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 kubernetes-1.20.2/vendor/github.com/modern-go/reflect2
  mkdir -p kubernetes-1.20.2/.go/src/k8s.io
  ln -sfn ../../.. kubernetes-1.20.2/.go/src/k8s.io/kubernetes   # GOPATH layout, as debian/rules does
fi

log "building kube-apiserver and kube-controller-manager (about 6 minutes cold on 2 cores)"
cd kubernetes-1.20.2
GOCACHE="$work/gocache" CGO_ENABLED=0 HOME="$work/home" GOPROXY=off GOFLAGS= \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2

arch_dir=$(ls -d _output/local/bin/linux/*/ | head -n1)
mkdir -p "$out"
cp "$arch_dir/kube-apiserver" "$arch_dir/kube-controller-manager" "$out/"
touch "$out/.complete"
# The source tree and Go cache are 2+ GB; only the binaries are worth keeping.
cd "$CACHE_ROOT" && rm -rf "$work/kubernetes-1.20.2" "$work/gocache" "$work/home"
log "binaries cached in $out"
echo "$out"
