# SPDX-License-Identifier: MIT
# test_reconfig's exec hook, run by the exec plugin as `sh test_reconfig_hook.sh HOOK`.
# Hooks get a clean environment, not the daemon's: the test's folder is the
# one the mount point is in ($MFS_TMP/mntN), TEST_RECONFIG_DIR, and the log
# in it is TEST_RECONFIG_LOG, unless the command sets them.
#
# Appends "exec HOOK" to $TEST_RECONFIG_LOG, records MALLAFS_SERVICE and
# MALLAFS_MOUNT in $TEST_RECONFIG_DIR/env.SERVICE.HOOK, and acts on the value
# of [app] k in the configuration it gets on stdin:
#   validate:  reject-exec   rejected, with a reason on stderr
#   on_update: fail-exec     exit 3 (an error)
#              restart-exec  exit 75 (a restart)
hook=$1
: "${TEST_RECONFIG_DIR:=${MALLAFS_MOUNT%/*}}"
: "${TEST_RECONFIG_LOG:=$TEST_RECONFIG_DIR/order.log}"
ini=$(cat)
echo "exec $hook" >>"$TEST_RECONFIG_LOG"
printf '%s\n%s\n' "$MALLAFS_SERVICE" "$MALLAFS_MOUNT" >"$TEST_RECONFIG_DIR/env.$MALLAFS_SERVICE.$hook"
k=$(printf '%s\n' "$ini" | sed -n 's/^k = //p')
case "$hook:$k" in
validate:reject-exec)
	echo "k may not be reject-exec" >&2
	echo "a second line of stderr" >&2
	exit 1
	;;
on_update:fail-exec)
	echo "exec refuses k=fail-exec" >&2
	exit 3
	;;
on_update:restart-exec)
	exit 75
	;;
esac
exit 0
