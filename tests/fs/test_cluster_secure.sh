#!/bin/bash
# SPDX-License-Identifier: MIT
# Cluster mode against an etcd that serves clients over TLS only and has
# user authentication on: a node given the CA, the user and a password file
# mounts and shares config/; without the CA, with a wrong password, with a
# password file others may read, or with bad options, mallafs says why and
# exits 1 without mounting.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../etcd/lib_etcd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_cluster.sh"

mfs_need openssl openssl
etcd_make_tls "$MFS_TMP/tls"
ETCD_TLS_DIR=$MFS_TMP/tls
etcd_start_one "$MFS_TMP/etcd" >/dev/null
assert_match "etcd serves https" "^https://" "$ETCD_ENDPOINTS"
PW=pw-$RANDOM$RANDOM
assert_ok etcd_ctl user add root --interactive=false --new-user-password="$PW"
assert_ok etcd_ctl auth enable
printf '%s\n' "$PW" >"$MFS_TMP/pw"
chmod 600 "$MFS_TMP/pw"
CA=$MFS_TMP/tls/ca.pem

cl_start A -o "cluster_cacert=$CA,cluster_user=root,cluster_password_file=$MFS_TMP/pw"
A=${CL_MNT[A]}
assert_eq "cluster/status: connected" connected "$(head -n 1 "$A/cluster/status")"
assert_match "cluster/status: the https endpoint" "endpoint https://127.0.0.1:" "$(cat "$A/cluster/status")"
assert_ok mkdir "$A/config/app"
assert_ok bash -c "echo secret > '$A/config/app/k'"
got=$(etcd_ctl --user "root:$PW" get --print-value-only /mallafs/default/config/k/app/k 2>&1)
assert_eq "etcd holds the value (its writer, then the bytes)" $'A\nsecret' "$got"
cl_stop A

# refused MESSAGE OPTIONS: mallafs exits 1 before mounting, saying MESSAGE.
refused()
{
	local want=$1 out rc
	shift
	mkdir -p "$MFS_TMP/mnt-x"
	out=$("$MALLAFS" -f -o "$1" "$MFS_TMP/mnt-x" 2>&1 </dev/null)
	rc=$?
	assert_eq "refused ($want): exit status 1" 1 "$rc"
	assert_match "refused ($want): the message says why" "$want" "$out"
	assert_true "refused ($want): nothing mounted" eval '! mfs_mounted "$MFS_TMP/mnt-x"'
}
base="cluster=$ETCD_ENDPOINTS,node=X,cluster_timeout=1000"
refused "cannot reach etcd" "$base,cluster_user=root,cluster_password_file=$MFS_TMP/pw"
printf 'wrong\n' >"$MFS_TMP/bad"
chmod 600 "$MFS_TMP/bad"
refused "authentication failed" "$base,cluster_cacert=$CA,cluster_user=root,cluster_password_file=$MFS_TMP/bad"
chmod 644 "$MFS_TMP/bad"
refused "only its owner may read" "$base,cluster_cacert=$CA,cluster_user=root,cluster_password_file=$MFS_TMP/bad"
refused "cluster_user= needs cluster_password_file=" "$base,cluster_cacert=$CA,cluster_user=root"
refused "node=a:b: a node name" "cluster=$ETCD_ENDPOINTS,node=a:b"
refused "cluster_ttl=1: seconds from 2 to 3600" "$base,cluster_ttl=1"
refused "cluster_prefix=relative: an absolute path" "$base,cluster_prefix=relative"
mfs_done
