#!/usr/bin/env bash
# Checks the layering rules of docs/DESIGN.md ("Folders and the ways data may flow") on the
# tracked sources: which folder may include which, where third-party loop/client headers may
# appear, and that no meson.build compiles another folder's sources. Prints each violation;
# exit status 1 when there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
violation() { echo "layering: $*"; bad=1; }

all_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git ls-files "$@"
  else find . \( -name '*.[ch]' -o -name meson.build \) -not -path './build*' | sed 's|^\./||'; fi
}
files() { all_files | grep -E "^$1.*\.(c|h)$"; }

# folder -> folders whose headers it must not include
declare -A forbidden=(
  [common]="redis profiles matcher gateway delivery zhidad client"
  [redis]="profiles matcher gateway delivery zhidad client"
  [profiles]="matcher gateway delivery zhidad client"
  [matcher]="gateway delivery zhidad client"
  [gateway]="redis profiles matcher delivery zhidad client"
  [delivery]="zhidad client"
  [include]="common redis profiles matcher gateway delivery zhidad client"
)
for folder in "${!forbidden[@]}"; do
  for f in $(files "$folder/"); do
    for up in ${forbidden[$folder]}; do
      grep -nE "#include \"$up/" "$f" | while read -r line; do
        echo "layering: $f includes $up/: $line"
      done | grep . && bad=1
    done
  done
done

# Third-party headers stay in the files that adapt them.
check_lib() { # header-prefix allowed-file-regex
  for f in $(all_files | grep -E '\.(c|h)$' | grep -vE '^(tests|bench)/'); do
    if grep -qE "#include <$1/" "$f" && ! [[ $f =~ $2 ]]; then
      violation "$f includes <$1/...> (only $2 may)"
    fi
  done
}
check_lib hiredis '^redis/redis\.c$'
check_lib event2 '^(redis/(redis|timer)\.c|zhidad/(http|http_conn|http_req|main)\.c|zhidad/http_private\.h|gateway/.*_ev\.c)$'
check_lib curl '^(gateway/.*\.c|client/(zhida|import)\.c)$'

# common/ is libc only.
for f in $(files common/); do
  grep -nE '#include <(cjson|roaring|hiredis|event2|curl)/' "$f" >/dev/null &&
    violation "$f includes a library header (common/ is libc only)"
done

# Every meson.build compiles only its own folder's sources.
for m in $(all_files | grep -E '(^|/)meson\.build$'); do
  grep -nE "'\.\./" "$m" >/dev/null && violation "$m compiles sources of another folder"
done

if [[ $bad -eq 0 ]]; then echo "layering: ok"; fi
exit $bad
