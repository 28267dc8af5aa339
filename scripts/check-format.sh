#!/usr/bin/env bash
# Checks that every tracked C++ file is laid out as .clang-format says. Prints the files that
# differ (and, with -v, the diff) and exits 1 when any does; it never rewrites a file. To fix
# a file: `clang-format-14 -i FILE`.
# Usage: scripts/check-format.sh [-v]
# Environment: CLANG_FORMAT picks the binary (default clang-format-14: other versions lay code
# out differently, so CI and developers must run the same one).
set -euo pipefail
verbose=0
[ "${1:-}" = "-v" ] && verbose=1
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
clang_format=${CLANG_FORMAT:-clang-format-14}
command -v "$clang_format" >/dev/null || { echo "check-format: $clang_format not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
"$clang_format" --style=file --dump-config >/dev/null || { echo "check-format: .clang-format is not valid for $clang_format" >&2; exit 2; }

mapfile -t files < <(git ls-files -- '*.cpp' '*.cc' '*.h' '*.hpp' '*.cu' '*.cuh')
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue  # deleted in the work tree but still in the index
  if ! "$clang_format" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
    if [ "$verbose" -eq 1 ]; then
      "$clang_format" --style=file "$f" | diff -u --label "$f" --label "$f (formatted)" "$f" - || true
    fi
  fi
done
if [ "${#bad[@]}" -gt 0 ]; then
  printf 'check-format: %s\n' "${bad[@]}"
  echo "check-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format ($clang_format)" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
