#!/usr/bin/env bash
# What jukicore needs from the system beyond Python's packages, installed where it can be:
#   fonts-ipamj-mincho  IPAmj明朝, the font of every PDF (certificates, viewing lists)
#   poppler-utils       pdftotext and pdftoppm, which the tests read those PDFs with
# As root on Debian or Ubuntu the missing ones are installed with apt-get; anywhere else
# this says what is missing and how to get it, and goes on (everything but the PDFs
# works without them; the PDFs then fail with a MissingFontError that says the same).
set -uo pipefail
need=()
font_found() {
  [ -n "${JUKICORE_MINCHO_FONT:-}" ] && [ -r "$JUKICORE_MINCHO_FONT" ] && return 0
  [ -f /usr/share/fonts/truetype/ipamj/ipamjm.ttf ] && return 0
  command -v fc-match >/dev/null && fc-match -f '%{file}' 'IPAmj Mincho' 2>/dev/null \
    | grep -q 'ipamjm\.ttf$'
}
font_found || need+=(fonts-ipamj-mincho)
{ command -v pdftotext && command -v pdftoppm; } >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
     { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    exit 0
  fi
fi
echo "jukicore: missing system packages: ${need[*]}" >&2
echo "  install them (Debian/Ubuntu: sudo apt-get install ${need[*]}); or download" >&2
echo "  IPAmj明朝 from https://moji.or.jp/mojikiban/font/ and set JUKICORE_MINCHO_FONT" >&2
echo "  to its ipamjm.ttf. Without them certificates and viewing lists cannot be" >&2
echo "  printed as PDF (MissingFontError) and their tests fail." >&2
exit 0
