#!/bin/sh
# Run by the KSM page (as root, through Cockpit's superuser bridge) to set
# ksmtuned's policy: KSM_POLICY in the drop-in ROOT/etc/ksmtuned.conf.d/policy.conf
# (ksmtuned.conf(5)). Usage: set-policy KSMTUNED ROOT POLICY.
# The new configuration is checked first, on a private copy, with
# `ksmtuned --check-config`: nothing is written unless it is valid and the
# policy that would run is POLICY (KSM_POLICY in ksmtuned.conf itself wins
# over the drop-in). Then the drop-in is replaced atomically and a running
# ksmtuned is reloaded (only for the real root /).
set -eu
ksmtuned=$1 root=${2%/} policy=$3
case $policy in classic|adaptive) ;; *) echo "unknown policy \"$policy\" (classic or adaptive)"; exit 2 ;; esac
conf=$root/etc/ksmtuned.conf
dropin=$conf.d/policy.conf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/ksmtuned.conf.d"
if [ -e "$conf" ]; then cp "$conf" "$tmp/ksmtuned.conf"; else : >"$tmp/ksmtuned.conf"; fi
for f in "$conf.d"/*.conf; do
    if [ -e "$f" ]; then cp "$f" "$tmp/ksmtuned.conf.d/"; fi
done
{
    if [ -e "$dropin" ]; then grep -v '^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}KSM_POLICY=' "$dropin" || true; fi
    echo "KSM_POLICY=$policy"
} >"$tmp/ksmtuned.conf.d/policy.conf"
if ! out=$("$ksmtuned" --check-config "$tmp/ksmtuned.conf" 2>&1); then
    printf 'not changed: the new configuration is not valid:\n%s\n' "$out" | sed "s|$tmp/|$root/etc/|g"
    exit 1
fi
if ! printf '%s\n' "$out" | grep -q "^policy: $policy "; then
    where=$(printf '%s\n' "$out" | sed -n "s|^policy: [a-z]* (\(.*\))\$|\1|p" | sed "s|$tmp/|$root/etc/|g")
    printf 'not changed: %s decides the policy, and ksmtuned.conf wins over its drop-ins: change KSM_POLICY there.\n' "$where"
    printf '%s\n' "$out" | sed "s|$tmp/|$root/etc/|g"
    exit 1
fi
mkdir -p "$conf.d"
cp "$tmp/ksmtuned.conf.d/policy.conf" "$dropin.ksm-page"
chmod 644 "$dropin.ksm-page"
mv -f "$dropin.ksm-page" "$dropin"
echo "wrote $dropin: KSM_POLICY=$policy"
if [ -n "$root" ]; then
    echo "not reloading ksmtuned: the configuration is under the test root $root"
elif command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ksmtuned 2>/dev/null; then
    systemctl reload ksmtuned
    echo "reloaded ksmtuned"
else
    echo "ksmtuned is not running here: the policy applies when it starts"
fi
