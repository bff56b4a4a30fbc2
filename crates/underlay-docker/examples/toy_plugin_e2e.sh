#!/bin/bash
# Manual end-to-end check of the wire format against a real dockerd, using
# the toy_plugin example. Needs root, dockerd, containerd, runc, rustc, ip.
#
# Everything runs in a private mount + network namespace: a dockerd of its
# own (state under a temp dir, vfs storage, no iptables, no bridge), the
# plugin directory /run/docker/plugins replaced by a tmpfs, so the host's
# dockerd and plugins are untouched. Containers use a one-file image built
# locally (a static "sleep" binary): nothing is pulled.
#
#   cargo build -p underlay-docker --example toy_plugin
#   sudo crates/underlay-docker/examples/toy_plugin_e2e.sh target/debug/examples/toy_plugin
set -eu
if [ "${1:-}" != "--inside" ]; then
    plugin=$(realpath "${1:?usage: $0 path/to/toy_plugin}")
    work=$(mktemp -d /tmp/toy-plugin-e2e.XXXXXX)
    mkdir -p "$work/rootfs" "$work/cgroup"
    echo 'fn main() { std::thread::sleep(std::time::Duration::from_secs(600)); }' > "$work/sleeper.rs"
    rustc -O -C target-feature=+crt-static "$work/sleeper.rs" -o "$work/rootfs/sleeper"
    echo '{"storage-driver": "vfs"}' > "$work/daemon.json"
    status=0
    unshare -m -n --propagation private "$0" --inside "$plugin" "$work" || status=$?
    echo "logs: $work/plugin.log $work/dockerd.log"
    exit $status
fi
plugin=$2 work=$3
mount -t tmpfs tmpfs /run/docker/plugins
# sysfs shows the network namespace it was mounted in (the toy reads MACs
# there); keep the host's cgroup tree across the remount for runc.
mount --rbind /sys/fs/cgroup "$work/cgroup"
mount -t sysfs sysfs /sys
mount --rbind "$work/cgroup" /sys/fs/cgroup
ip link set lo up
export DOCKER_HOST=unix://$work/docker.sock
RUST_LOG=underlay_docker=debug,toy_plugin=info "$plugin" /run/docker/plugins/toy.sock > "$work/plugin.log" 2>&1 &
plugin_pid=$!
dockerd --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$work/exec" \
    --pidfile "$work/docker.pid" -H "$DOCKER_HOST" --bridge=none --iptables=false --ip-masq=false \
    --userland-proxy=false --cgroup-parent=toy-plugin-e2e > "$work/dockerd.log" 2>&1 &
dockerd_pid=$!
cleanup() { kill "$dockerd_pid"; wait "$dockerd_pid" || true; kill "$plugin_pid"; }
trap cleanup EXIT
for _ in $(seq 150); do docker version > /dev/null 2>&1 && break; sleep 0.2; done
echo "dockerd $(docker version --format '{{.Server.Version}}')"

check() { # description, expected, actual
    if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: expected [$2], got [$3]"; exit 1; fi
}

out=$(docker network create -d toy --ipam-driver toy toynet-nosubnet 2>&1 || true)
check "a handler error reaches the user" "Error response from daemon: IpamDriver.RequestPool: the toy plugin needs --subnet" "$out"

docker network create -d toy --ipam-driver toy --subnet 10.77.0.0/24 --gateway 10.77.0.1 \
    --aux-address router=10.77.0.2 -o parent=eth0 toynet > /dev/null
check "network IPAM" '[{"Subnet":"10.77.0.0/24","Gateway":"10.77.0.1","AuxiliaryAddresses":{"router":"10.77.0.2"}}]' \
    "$(docker network inspect toynet --format '{{json .IPAM.Config}}')"
check "generic options" '{"parent":"eth0"}' "$(docker network inspect toynet --format '{{json .Options}}')"

tar -C "$work/rootfs" -c . | docker import - toy-sleeper > /dev/null
docker run -d --network toynet --name c1 toy-sleeper /sleeper > /dev/null
docker run -d --network toynet --ip 10.77.0.50 --name c2 toy-sleeper /sleeper > /dev/null
for c in c1 c2; do
    pid=$(docker inspect -f '{{.State.Pid}}' $c)
    ip_inside=$(nsenter -t "$pid" -n ip -4 -o addr show dev eth0 2> /dev/null | awk '{print $4}')
    mac_inside=$(nsenter -t "$pid" -n ip -o link show dev eth0 2> /dev/null | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)
    check "$c address matches docker inspect" "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}}{{end}}' $c)" "$ip_inside"
    check "$c MAC reported by CreateEndpoint" "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}' $c)" "$mac_inside"
    check "$c default route from Join" "default via 10.77.0.1 dev eth0" "$(nsenter -t "$pid" -n ip route show default 2> /dev/null | cut -d' ' -f1-5)"
done
check "first free address" "10.77.0.3" "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' c1)"
check "requested address" "10.77.0.50" "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' c2)"
docker rm -f c1 c2 > /dev/null
docker network rm toynet > /dev/null
check "veths removed" "" "$(ip -o link show type veth)"
check "only the one intended failure" "1" "$(grep -c 'plugin call failed' "$work/plugin.log" || true)"
echo "calls: $(grep -c 'plugin call' "$work/plugin.log"), methods: $(grep -o 'path=[^ ]*' "$work/plugin.log" | sort -u | sed 's/path=.//' | tr '\n' ' ')"
echo "connections opened: $(grep -c 'plugin connection opened' "$work/plugin.log")"
