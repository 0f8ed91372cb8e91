#!/usr/bin/env bash
# Installs the embedded ClickHouse engine (libchdb.so) into .chdb/ from the
# npm package @chdb/lib-linux-x64-gnu. Idempotent: does nothing when the
# library is already there.
set -euo pipefail
version="${CHDB_VERSION:-26.7.3-stable.1}"
top="$(cd "$(dirname "$0")/.." && pwd)"
dest="$top/.chdb"
if [ -s "$dest/libchdb.so" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-libchdb: npm is needed (Debian: apt-get install -y npm)" >&2
  exit 1
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install-libchdb: fetching @chdb/lib-linux-x64-gnu@$version" >&2
(cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$version" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/libchdb.so
cp "$tmp/package/libchdb.so" "$dest/libchdb.so.part"
mv "$dest/libchdb.so.part" "$dest/libchdb.so"
echo "install-libchdb: installed $dest/libchdb.so" >&2
