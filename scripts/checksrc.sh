#!/bin/sh
# Source rules that compilers do not enforce (STYLE.md, docs/ARCHITECTURE.md): banned unsafe
# calls in product code, and includes that point up the layer order.
top=$(cd "$(dirname "$0")/.." && pwd)
rc=0
bad=$(grep -nE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|alloca|gets)\s*\(' \
      "$top"/src/*/*.c "$top"/src/*/*.h "$top"/tools/*.c "$top"/include/*.h 2>/dev/null)
if [ -n "$bad" ]; then
  echo "checksrc: banned functions (use snprintf, memcpy with lengths, strtol):"
  echo "$bad"
  rc=1
fi
# A folder of src/ may include only the folders before it here (docs/ARCHITECTURE.md, Layers).
layers="util tensor formats text image hub models engine server"
rank() { i=0; for l in $layers; do [ "$l" = "$1" ] && { echo $i; return; }; i=$((i + 1)); done; echo -1; }
for dir in "$top"/src/*/; do
  d=$(basename "$dir")
  rd=$(rank "$d")
  if [ "$rd" -lt 0 ]; then echo "checksrc: src/$d is not in the layer order of scripts/checksrc.sh"; rc=1; continue; fi
  for inc in $(grep -ho '#include "[a-z_0-9]*/' "$dir"*.[ch] 2>/dev/null | sed 's/#include "//; s/\///' | sort -u); do
    [ "$inc" = "$d" ] && continue
    ri=$(rank "$inc")
    if [ "$ri" -lt 0 ] || [ "$ri" -gt "$rd" ]; then
      echo "checksrc: src/$d includes $inc/, a layer after it:"
      grep -n "#include \"$inc/" "$dir"*.[ch]
      rc=1
    fi
  done
done
[ $rc -eq 0 ] && echo "checksrc: ok"
exit $rc
