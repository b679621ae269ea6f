#!/usr/bin/env bash
# Builds the Debian root of one suite for the OTP matrix of the interop tests (tests/erl.py):
# a minimal Debian with its Erlang/OTP, whose `erl` the tests run with chroot on this machine's
# loopback and EPMD. `make otp-roots` calls it, as root, for each suite it lacks:
#
#   scripts/otp_root.sh SUITE ROOTS MIRROR
#
# ROOTS/SUITE is the root, ROOTS/SUITE.log debootstrap's output. ROOTS/SUITE.done, written
# last, holds the root's OTP version: a root without it is half-built, and is built again from
# scratch rather than used.
set -euo pipefail

suite=$1 roots=$2 mirror=$3
root=$roots/$suite
log=$roots/$suite.log

mkdir -p "$roots"
rm -f "$roots/$suite.done"
# --one-file-system: should a debootstrap that died have left /proc or /sys mounted inside,
# this fails instead of deleting through them.
rm -rf --one-file-system "$root"
echo "building the Debian $suite root for the OTP matrix in $root (once; about a minute)"
if ! debootstrap --variant=minbase \
    --include=erlang-base,erlang-crypto,erlang-public-key,erlang-ssl \
    "$suite" "$root" "$mirror" >"$log" 2>&1; then
    tail -n 30 "$log"
    echo "FAILED: debootstrap of the Debian $suite root from $mirror (log: $log)" >&2
    exit 1
fi
rm -f "$root"/var/cache/apt/archives/*.deb # installed already: 50 MB less
cp /etc/hosts "$root/etc/hosts"            # its nodes need this machine's short host name
release=$(chroot "$root" erl -noshell -eval \
    'io:put_chars(erlang:system_info(otp_release)), halt().')
version=$(cat "$root"/usr/lib/erlang/releases/"$release"/OTP_VERSION)
echo "$version" >"$roots/$suite.done"
echo "Debian $suite root: OTP $version"
