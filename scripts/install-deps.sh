#!/bin/sh
# Install everything the build, the tests and the demo need, by Debian package name.
# Idempotent: when every package is already installed it exits at once without
# touching the network. Needs root (or sudo) only when something is missing.
set -eu

PKGS="
build-essential pkg-config clang libfuzzer-14-dev libclang-rt-14-dev
libsystemd-dev libcurl4-openssl-dev libjansson-dev libssh-dev libssl-dev
libnanomsg-dev libyaml-dev libcmocka-dev zlib1g-dev libnl-route-3-dev
libhttp-parser-dev libwslay-dev
systemd curl openssl python3 procps psmisc iproute2 iptables
dnsmasq-base busybox openssh-server docker-registry prometheus nginx-light
valgrind wrk
"

# Debian's kubectl 1.20 (package kubernetes-client) is tested too, but installing it would
# replace the Google Cloud SDK's /usr/bin/kubectl dispatcher: unpack it aside instead.
KUBECTL_120_DIR=/opt/cocoon-test/kubernetes-client
unpack_kubectl_120() {
	[ -x "$KUBECTL_120_DIR/usr/bin/kubectl" ] && return 0
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	if (cd "$tmp" && apt-get download -qq kubernetes-client 2>/dev/null) &&
		$SUDO mkdir -p "$KUBECTL_120_DIR" &&
		$SUDO dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$KUBECTL_120_DIR"; then
		echo "install-deps: unpacked kubectl 1.20 into $KUBECTL_120_DIR"
	else
		echo "install-deps: could not unpack kubernetes-client (kubectl 1.20 tests will skip)"
	fi
	rm -rf "$tmp"
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = "installed" ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
	echo "install-deps: all $(echo $PKGS | wc -w) packages present"
	unpack_kubectl_120
	exit 0
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Daemons pulled in by packages (docker-registry, nginx, prometheus) must not be
# started by their maintainer scripts: tests start their own instances.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	created_policy=1
fi
rc=0
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing || rc=$?
[ "$created_policy" -eq 0 ] || $SUDO rm -f "$policy"
[ "$rc" -ne 0 ] || unpack_kubectl_120
exit $rc
