#!/usr/bin/env bash
# Checks that every section the repository cites exists:
#
#   bash infra/scripts/check-spec-citations.sh
#
# - "spec N.N" / "spec N.N.N" (also "Spec", "§N.N", and lists such as "spec 3.4.5 to 3.4.7, 6.3"
#   or "spec 2.1, 3.1") must be a numbered heading of docs/wire-protocol.md, and a row such as
#   "spec 3.3 #12" (or "#10 to #15" in such a list) a numbered row of its Client API table;
# - "DESIGN N" (also "DESIGN 3, 8") must be a numbered heading of docs/design.md.
#
# Every file git knows (tracked, or new and not ignored) is read, text files only. Comment
# leaders (//!, ///, //, #, *, --) are dropped and lines joined first, so a citation wrapped
# over two comment lines ("spec" at the end of one, "3.4.4" at the start of the next) counts.
# Exits 1 naming each missing section and the files that cite it; 0 when none is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

spec_doc=docs/wire-protocol.md
design_doc=docs/design.md
for doc in "$spec_doc" "$design_doc"; do
    [[ -f $doc ]] || { echo "missing $doc" >&2; exit 2; }
done

# The numbers of a document's headings: "## 5. Tokens" → 5, "#### 3.4.1 Add credential" → 3.4.1.
headings() { grep -oE '^#{1,6} [0-9]+(\.[0-9]+)*' "$1" | sed -E 's/^#+ //'; }
# Rows of the Client API table (spec 3.3): "| 12 | browser: start push |" → 3.3#12.
rows() { grep -oE '^\| [0-9]+ \|' "$1" | grep -oE '[0-9]+' | sed 's/^/3.3#/'; }
spec_sections=" $(headings "$spec_doc" | tr '\n' ' ') $(rows "$spec_doc" | tr '\n' ' ') "
design_sections=" $(headings "$design_doc" | tr '\n' ' ') "

num='[0-9]+(\.[0-9]+)*'
# A list goes on after a comma, a semicolon, "and", "to" or "or"; "#12" (row 12 of the Client
# API table, spec 3.3) may also follow a space, as in "spec 3.3 #12".
more=" *(,|;| and| to| or) *#?${num}| +#[0-9]+"
spec_re="(\\b[Ss]pec|§) *${num}(${more})*"
design_re="\\bDESIGN +[0-9]+( *(,| and) *[0-9]+)*"

# One line per citation found: "<kind> <number> <file>".
citations() {
    local file text
    while IFS= read -r -d '' file; do
        [[ -f $file ]] || continue
        grep -Iq . "$file" 2>/dev/null || continue # binary or empty
        text=$(sed -E 's#^[[:space:]]*(//[/!]?|\#+|\*|--)[[:space:]]?##' "$file" | tr '\n\t' '  ')
        grep -oE "$spec_re" <<<"$text" | grep -oE "#?$num" |
            sed -E "s@^#(.*)@spec 3.3#\\1@; s@^([0-9])@spec \\1@; s@\$@ $file@" || true
        grep -oE "$design_re" <<<"$text" | grep -oE '[0-9]+' | sed "s#^#DESIGN #; s#\$# $file#" || true
    done < <(git ls-files -z --cached --others --exclude-standard)
}

found=$(citations | sort -u)
if [[ ${1:-} == --list ]]; then
    cut -d' ' -f1,2 <<<"$found" | sort -u -V | tr '\n' ' '
    echo
fi
missing=$(
    while read -r kind number file; do
        [[ -n ${kind:-} ]] || continue
        if [[ $kind == spec ]]; then sections=$spec_sections; else sections=$design_sections; fi
        [[ $sections == *" $number "* ]] || echo "$kind $number $file"
    done <<<"$found"
)

cited=$(cut -d' ' -f1,2 <<<"$found" | sort -u | wc -l)
if [[ -n $missing ]]; then
    echo "Cited but missing (no such heading in $spec_doc / $design_doc):"
    while read -r kind number; do
        files=$(grep -E "^$kind ${number//./\\.} " <<<"$missing" | cut -d' ' -f3- | tr '\n' ' ')
        echo "  $kind $number: $files"
    done < <(cut -d' ' -f1,2 <<<"$missing" | sort -u -V)
    exit 1
fi
echo "ok: all $cited cited sections exist ($spec_doc, $design_doc)"
