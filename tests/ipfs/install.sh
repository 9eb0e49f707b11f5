#!/bin/bash
# Installs js-ipfs (package.json here) into a cache folder outside the clone and prints its path.
#
#   tests/ipfs/install.sh            -> prints e.g. /home/u/.cache/cairn-jsipfs/3f2a…/ (contains node_modules)
#
# The folder is $CAIRN_JSIPFS_CACHE/<hash> (default $HOME/.cache/cairn-jsipfs/<hash>), where <hash>
# covers package.json and package-lock.json, so a changed dependency set gets a fresh folder and
# an unchanged one is reused (a cached run takes well under a second). Concurrent callers are
# serialised with flock; the install happens in a temporary folder renamed into place at the end,
# so a half-finished install is never mistaken for a complete one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${CAIRN_JSIPFS_CACHE:-$HOME/.cache/cairn-jsipfs}"
files=("$here/package.json")
[ -f "$here/package-lock.json" ] && files+=("$here/package-lock.json")
hash="$(cat "${files[@]}" | sha256sum | cut -c1-16)"
dest="$cache_root/$hash"
marker="$dest/.complete"

if [ -f "$marker" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock-$hash"
flock -w 900 9 || { echo "install.sh: timed out waiting for another install of $dest" >&2; exit 1; }
if [ -f "$marker" ]; then # another caller finished while we waited
  echo "$dest"
  exit 0
fi

work="$cache_root/.partial-$hash-$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
cp "${files[@]}" "$work/"
start=$(date +%s)
echo "install.sh: installing js-ipfs into $dest (3-4 minutes on a cold npm cache)" >&2
cd "$work"
# Not `npm ci`: npm 11 refuses this lockfile ("Missing: headless@ from lock file", an npm bug with
# optional peer dependencies); `npm install` still installs the locked versions.
npm install --no-audit --no-fund --loglevel=error >&2
touch .complete
cd "$cache_root"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
echo "install.sh: done in $(( $(date +%s) - start ))s" >&2
echo "$dest"
