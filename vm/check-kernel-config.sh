#!/usr/bin/env bash
# vm/check-kernel-config.sh <fragment> <.config>
#
# Fails, listing them, if options the fragment asks for did not end up in the final .config.
# merge_config.sh and olddefconfig silently drop an option whose dependencies are off, and a
# kernel without CACHEFILES_ONDEMAND still builds and boots, so the builds check explicitly.
#   CONFIG_X=v             must appear exactly so;
#   # CONFIG_X is not set  must not be =y or =m.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <fragment> <.config>" >&2; exit 2; }
fragment=$1
config=$2
[ -f "$fragment" ] || { echo "check-kernel-config: $fragment not found" >&2; exit 2; }
[ -f "$config" ] || { echo "check-kernel-config: $config not found" >&2; exit 2; }

missing=()
while IFS= read -r line; do
  case $line in
    CONFIG_*=*)
      if ! grep -qxF -- "$line" "$config"; then
        got=$(grep -E "^(# )?${line%%=*}[= ]" "$config" || true)
        missing+=("$line (final .config: ${got:-absent})")
      fi
      ;;
    "# CONFIG_"*" is not set")
      opt=${line#\# }; opt=${opt%% *}
      got=$(grep -E "^$opt=[ym]" "$config" || true)
      [ -z "$got" ] || missing+=("$line (final .config: $got)")
      ;;
  esac
done <"$fragment"

if [ ${#missing[@]} -gt 0 ]; then
  echo "check-kernel-config: $config lacks ${#missing[@]} option(s) that $fragment asks for" \
       "(a dependency is off; add it to the fragment):" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "check-kernel-config: all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$fragment") options of $fragment are set" >&2
