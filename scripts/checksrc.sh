#!/bin/sh
# Source rules that compilers do not enforce (STYLE.md): banned unsafe calls in product code.
top=$(cd "$(dirname "$0")/.." && pwd)
bad=$(grep -nE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|alloca|gets)\s*\(' \
      "$top"/src/*/*.c "$top"/src/*/*.h "$top"/tools/*.c "$top"/include/*.h 2>/dev/null)
if [ -n "$bad" ]; then
  echo "checksrc: banned functions (use snprintf, memcpy with lengths, strtol):"
  echo "$bad"
  exit 1
fi
echo "checksrc: ok"
