#!/usr/bin/env python3
"""The lab: Debian hosts with real systemd on this one machine, for Ansible to deploy to.

    lab.py image [--rebuild]                    build the Debian image once (cached)
    lab.py wheelhouse [--rebuild]               build the pbx_services wheels the hosts install
    lab.py up -i INVENTORY [-i MORE] [HOST...]  boot the inventory's hosts (or only HOST...)
    lab.py down [--lab NAME]                    stop and remove everything of the lab
    lab.py leftovers [--lab NAME]               list what is left of it; exit 1 if anything
    lab.py status [--lab NAME]                  the running hosts

Each host is a systemd-nspawn container booted from an overlay of the image, in its own
network namespace, plugged into a bridge that lives in a namespace of its own, with the
address its inventory gives it (`ansible_host`, in 198.18.0.0/15) and no default route:
nothing leaves the machine. A controller namespace on the same bridge is where ssh
(Ansible's ProxyCommand) and sipp start from. Every namespace, mount, cgroup and process
is named after the lab (default `pbxlab`), so `down` finds and removes all of them.

The pitfalls this works around are measured in LAB-NOTES (the project's shared notes):
nspawn needs --register=no --keep-unit here, a cgroup of its own per launcher, and
CAP_NET_ADMIN for keepalived to add the VIP; it must not be started under `ip netns exec`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = Path(__file__).resolve().parent
STATE_DIR = Path(os.environ.get("PBX_LAB_STATE", "/var/lib/pbx-lab"))
RUN_DIR = Path("/run/pbx-lab")
IMAGE_DIR = STATE_DIR / "image"
SSH_KEY = STATE_DIR / "ssh" / "id_ed25519"
WHEELHOUSE = STATE_DIR / "wheelhouse"
SUITE = "bookworm"
DEFAULT_LAB = "pbxlab"
DEFAULT_CONTROLLER = "198.18.0.1/24"
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
SSH_READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Services the packages enable on install; the roles enable them where they belong.
SERVICES_OFF_BY_DEFAULT = ("postgresql", "redis-server", "redis-sentinel", "keepalived")


class LabError(Exception):
    """The lab cannot do what was asked; the message says why."""


def run(*argv: str, check: bool = True, capture: bool = False, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None, **kwargs)


def log(message: str) -> None:
    print(f"lab: {message}", flush=True)


# -- the image --------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses for the suite (never written into the repo)."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) >= 3 and parts[0] == "deb":
                    uri, suite = [p for p in parts[1:] if not p.startswith("[")][:2]
                    if suite == SUITE:
                        return uri
    raise LabError(f"no apt source for Debian {SUITE} on this machine to build the image from")


def image_packages() -> list[str]:
    lines = (LAB_DIR / "packages.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def image_stamp() -> str:
    return hashlib.sha256("\n".join([SUITE, *image_packages()]).encode()).hexdigest()[:16]


def rootfs() -> Path:
    return IMAGE_DIR / "rootfs"


def ensure_ssh_key() -> None:
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pbx-lab", "-f", str(SSH_KEY))


def build_image(rebuild: bool = False) -> Path:
    """Debootstrap the image once; later calls reuse it unless the package list changed."""
    stamp_file = IMAGE_DIR / "stamp"
    if not rebuild and stamp_file.exists() and stamp_file.read_text().strip() == image_stamp():
        return rootfs()
    ensure_ssh_key()
    started = time.monotonic()
    building = IMAGE_DIR / "rootfs.building"
    if building.exists():
        shutil.rmtree(building)
    building.mkdir(parents=True)
    mirror = debian_mirror()
    log(f"debootstrap {SUITE} (minbase) into {building}")
    run("debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus",
        SUITE, str(building), mirror)
    chroot_install(building, image_packages())
    configure_image(building)
    if rootfs().exists():
        shutil.rmtree(rootfs())
    building.rename(rootfs())
    stamp_file.write_text(image_stamp() + "\n")
    log(f"image built in {time.monotonic() - started:.0f} s: {rootfs()}")
    return rootfs()


def chroot_install(root: Path, packages: Sequence[str]) -> None:
    """apt-get install in the image, with /proc, /sys, /dev and /dev/shm there (initdb needs them)
    and no service started (policy-rc.d)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    mounts = [("proc", root / "proc", ["-t", "proc"]), ("sysfs", root / "sys", ["-t", "sysfs"]),
              ("/dev", root / "dev", ["--bind"]), ("devpts", root / "dev/pts", ["-t", "devpts"]),
              ("shm", root / "dev/shm", ["-t", "tmpfs"])]
    mounted: list[Path] = []
    try:
        for source, target, options in mounts:
            target.mkdir(parents=True, exist_ok=True)
            run("mount", *options, source, str(target))
            mounted.append(target)
        env = {"DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8",
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        run("chroot", str(root), "apt-get", "update", env=env)
        run("chroot", str(root), "apt-get", "install", "-y", "--no-install-recommends", *packages, env=env)
        run("chroot", str(root), "apt-get", "clean", env=env)
    finally:
        for target in reversed(mounted):
            run("umount", "-l", str(target), check=False)
        policy.unlink(missing_ok=True)


def configure_image(root: Path) -> None:
    for service in SERVICES_OFF_BY_DEFAULT:
        run("chroot", str(root), "systemctl", "disable", f"{service}.service", check=False)
    run("chroot", str(root), "systemctl", "enable", "ssh.service")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(SSH_KEY.with_suffix(".pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    # Each container gets a transient machine id and the hostname nspawn gives it.
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").unlink(missing_ok=True)
    # Lab hosts have no DNS: sshd must not wait on reverse lookups.
    (root / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text("UseDNS no\n")


def build_wheelhouse(rebuild: bool = False) -> Path:
    """The pbx_services wheel and its dependencies, for hosts that have no package index."""
    if rebuild and WHEELHOUSE.exists():
        shutil.rmtree(WHEELHOUSE)
    if not any(WHEELHOUSE.glob("pbx_services-*.whl")):
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        # A fixed SOURCE_DATE_EPOCH makes the wheel the same bytes for the same code, so a
        # rebuild without a change changes nothing on the hosts.
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        run(sys.executable, "-m", "pip", "wheel", "--quiet", f"{REPO}[postgresql]", "--wheel-dir",
            str(WHEELHOUSE), env=env)
        shutil.rmtree(REPO / "build", ignore_errors=True)
    return WHEELHOUSE


# -- hosts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    name: str
    address: str


def inventory_hosts(inventories: Sequence[str]) -> list[Host]:
    """Hosts of the Ansible inventories with an `ansible_host` (their lab address)."""
    argv = ["ansible-inventory", "--list"]
    for inventory in inventories:
        argv += ["-i", inventory]
    listing = json.loads(run(*argv, capture=True).stdout)
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    return [Host(name, variables["ansible_host"]) for name, variables in sorted(hostvars.items())
            if "ansible_host" in variables]


@dataclass(frozen=True)
class Lab:
    name: str
    controller: str = DEFAULT_CONTROLLER

    @property
    def prefix_length(self) -> str:
        return self.controller.split("/")[1]

    @property
    def bridge_ns(self) -> str:
        return f"{self.name}-br"

    @property
    def controller_ns(self) -> str:
        return f"{self.name}-ctl"

    def host_ns(self, host: str) -> str:
        return f"{self.name}-{host}"

    def host_dir(self, host: str) -> Path:
        return STATE_DIR / "hosts" / self.host_ns(host)

    def pid_file(self, host: str) -> Path:
        return RUN_DIR / f"{self.host_ns(host)}.pid"

    def veth(self, host: str) -> str:
        # Interface names have at most 15 characters; the bridge side only needs to be unique.
        return "v" + hashlib.sha1(self.host_ns(host).encode()).hexdigest()[:12]


def netns_list() -> list[str]:
    output = run("ip", "netns", "list", capture=True).stdout
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def in_ns(ns: str, *argv: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", ns, *argv, check=check, capture=capture)


def ensure_network(lab: Lab) -> None:
    """The bridge namespace and the controller namespace plugged into it."""
    existing = netns_list()
    if lab.bridge_ns not in existing:
        run("ip", "netns", "add", lab.bridge_ns)
        in_ns(lab.bridge_ns, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(lab.bridge_ns, "ip", "link", "set", "br0", "up")
        in_ns(lab.bridge_ns, "ip", "link", "set", "lo", "up")
    if lab.controller_ns not in existing:
        run("ip", "netns", "add", lab.controller_ns)
        plug(lab, lab.controller_ns, "vctl" + hashlib.sha1(lab.name.encode()).hexdigest()[:8], lab.controller)


def plug(lab: Lab, ns: str, bridge_side: str, address: str) -> None:
    """A veth pair between the bridge and `ns` (made from inside the bridge namespace, so no
    device ever appears in the machine's own namespace), `address` on the `ns` end (eth0)."""
    in_ns(lab.bridge_ns, "ip", "link", "add", bridge_side, "type", "veth",
          "peer", "name", "eth0", "netns", ns)
    in_ns(lab.bridge_ns, "ip", "link", "set", bridge_side, "master", "br0", "up")
    in_ns(ns, "ip", "link", "set", "lo", "up")
    in_ns(ns, "ip", "address", "add", address, "dev", "eth0")
    in_ns(ns, "ip", "link", "set", "eth0", "up")


def running(lab: Lab, host: str) -> int | None:
    """The pid of the host's systemd-nspawn when it runs."""
    try:
        pid = int(lab.pid_file(host).read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def boot(lab: Lab, host: Host, image: Path) -> None:
    ns = lab.host_ns(host.name)
    if running(lab, host.name):
        log(f"{host.name} runs already")
        return
    if ns not in netns_list():
        run("ip", "netns", "add", ns)
        plug(lab, ns, lab.veth(host.name), f"{host.address}/{lab.prefix_length}")
    directory = lab.host_dir(host.name)
    merged = directory / "root"
    for sub in ("upper", "work", "root"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(merged):
        run("mount", "-t", "overlay", ns, "-o",
            f"lowerdir={image},upperdir={directory / 'upper'},workdir={directory / 'work'}", str(merged))
    # Each launcher in a cgroup of its own, or the containers' services share one and fail
    # intermittently with status=219/CGROUP.
    cgroups = []
    for hierarchy in CGROUP_HIERARCHIES:
        if hierarchy.is_dir():
            (hierarchy / ns).mkdir(exist_ok=True)
            cgroups.append(str(hierarchy / ns / "cgroup.procs"))
    join = "".join(f'echo $$ > "{path}"; ' for path in cgroups)
    nspawn = ["systemd-nspawn", "--quiet", "--boot", f"--directory={merged}", f"--machine={ns}",
              f"--hostname={host.name}", "--register=no", "--keep-unit", "--console=passive",
              f"--network-namespace-path=/run/netns/{ns}", "--capability=CAP_NET_ADMIN"]
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    # /proc/sys/net writable: the container's own network namespace's settings (somaxconn,
    # ip_nonlocal_bind for the VIP) are the roles' to set, as on a real host.
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network")
    with open(directory / "console.log", "ab") as console:
        launcher = subprocess.Popen(["sh", "-c", join + 'exec "$@"', "sh", *nspawn],
                                    stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                    start_new_session=True, env=env)
    lab.pid_file(host.name).write_text(f"{launcher.pid}\n")
    log(f"{host.name} booting at {host.address} (pid {launcher.pid})")


def wait_ssh(lab: Lab, hosts: Iterable[Host]) -> None:
    deadline = time.monotonic() + SSH_READY_TIMEOUT
    for host in hosts:
        while True:
            probe = in_ns(lab.controller_ns, *ssh_argv(host.address), "true", check=False, capture=True)
            if probe.returncode == 0:
                break
            if not running(lab, host.name):
                raise LabError(f"{host.name} stopped while booting: "
                               f"see {lab.host_dir(host.name)}/console.log")
            if time.monotonic() > deadline:
                raise LabError(f"{host.name} not reachable by ssh after {SSH_READY_TIMEOUT:.0f} s: "
                               f"{probe.stderr.strip()}")
            time.sleep(0.5)
    log("ssh ready on " + ", ".join(host.name for host in hosts))


def ssh_argv(address: str) -> list[str]:
    return ["ssh", "-i", str(SSH_KEY), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=2",
            f"root@{address}"]


def up(lab: Lab, inventories: Sequence[str], only: Sequence[str]) -> None:
    started = time.monotonic()
    image = build_image()
    build_wheelhouse()
    hosts = inventory_hosts(inventories)
    if only:
        unknown = set(only) - {host.name for host in hosts}
        if unknown:
            raise LabError(f"not in the inventory: {', '.join(sorted(unknown))}")
        hosts = [host for host in hosts if host.name in only]
    if not hosts:
        raise LabError("the inventory has no host with an ansible_host address")
    ensure_network(lab)
    for host in hosts:
        boot(lab, host, image)
    wait_ssh(lab, hosts)
    log(f"up in {time.monotonic() - started:.1f} s")


# -- tear-down ------------------------------------------------------------------------------


def lab_hosts_present(lab: Lab) -> set[str]:
    """Names of hosts that left anything: a namespace, a pid file, a state dir or a cgroup."""
    prefix = f"{lab.name}-"
    names = {ns for ns in netns_list() if ns.startswith(prefix)}
    if RUN_DIR.is_dir():
        names |= {path.stem for path in RUN_DIR.glob(f"{prefix}*.pid")}
    hosts_dir = STATE_DIR / "hosts"
    if hosts_dir.is_dir():
        names |= {path.name for path in hosts_dir.glob(f"{prefix}*")}
    for hierarchy in CGROUP_HIERARCHIES:
        if hierarchy.is_dir():
            names |= {path.name for path in hierarchy.glob(f"{prefix}*") if path.is_dir()}
    return {name[len(prefix):] for name in names} - {"br", "ctl"}


def cgroup_pids(ns: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in CGROUP_HIERARCHIES:
        top = hierarchy / ns
        if top.is_dir():
            for procs in top.rglob("cgroup.procs"):
                pids |= {int(pid) for pid in procs.read_text().split()}
    return pids


def netns_pids(ns: str) -> set[int]:
    """Processes whose network namespace is `ns` (ssh proxies, sipp, a container's services)."""
    try:
        inode = os.stat(f"/run/netns/{ns}").st_ino
    except FileNotFoundError:
        return set()
    pids = set()
    for pid, _ in processes():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                pids.add(pid)
        except OSError:
            continue
    return pids


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def power_off(lab: Lab, hosts: Sequence[str]) -> None:
    """Power the hosts off together: nspawn turns SIGTERM into a clean poweroff."""
    for host in hosts:
        pid = running(lab, host)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(running(lab, host) for host in hosts) and time.monotonic() < deadline:
        time.sleep(0.2)


def stop_host(lab: Lab, host: str) -> None:
    ns = lab.host_ns(host)
    # Whatever is still in the host's cgroups or its namespace was started by the lab.
    kill_all(cgroup_pids(ns) | netns_pids(ns))
    deadline = time.monotonic() + STOP_TIMEOUT
    while cgroup_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.1)
    lab.pid_file(host).unlink(missing_ok=True)
    remove_cgroups(ns)
    merged = lab.host_dir(host) / "root"
    if os.path.ismount(merged):
        run("umount", str(merged))
    shutil.rmtree(lab.host_dir(host), ignore_errors=True)
    if ns in netns_list():
        run("ip", "netns", "delete", ns)


def remove_cgroups(ns: str) -> None:
    for hierarchy in CGROUP_HIERARCHIES:
        top = hierarchy / ns
        if top.is_dir():
            for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                directory.rmdir()
            top.rmdir()


def down(lab: Lab, only: Sequence[str] = ()) -> None:
    started = time.monotonic()
    hosts = sorted(only or lab_hosts_present(lab))
    power_off(lab, hosts)
    for host in hosts:
        stop_host(lab, host)
    if not only:
        for ns in (lab.controller_ns, lab.bridge_ns):
            if ns in netns_list():
                kill_all(netns_pids(ns))
                run("ip", "netns", "delete", ns)
    log(f"down ({', '.join(hosts) or 'nothing was running'}) in {time.monotonic() - started:.1f} s")


def leftovers(lab: Lab) -> list[str]:
    """Everything of the lab still on the machine: namespaces, links, mounts, cgroups, processes."""
    prefix = f"{lab.name}-"
    found = [f"network namespace {ns}" for ns in netns_list() if ns.startswith(prefix)]
    links = run("ip", "-o", "link", "show", capture=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
              if re.search(r"\b(v[0-9a-f]{12}|vctl[0-9a-f]{8})\b", line)]
    with open("/proc/self/mountinfo") as mountinfo:
        found += [f"mount {line.split()[4]}" for line in mountinfo if f"/hosts/{prefix}" in line.split()[4]]
    for hierarchy in CGROUP_HIERARCHIES:
        if hierarchy.is_dir():
            found += [f"cgroup {path}" for path in hierarchy.glob(f"{prefix}*")]
    found += [f"process {pid} ({name})" for pid, name in processes() if f"--machine={prefix}" in name]
    for ns in netns_list():
        if ns.startswith(prefix):
            found += [f"process {pid} in {ns}" for pid in sorted(netns_pids(ns))]
    if RUN_DIR.is_dir():
        found += [f"pid file {path}" for path in RUN_DIR.glob(f"{prefix}*.pid")]
    return found


def processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), command))
            except OSError:
                continue
    return found


def status(lab: Lab) -> None:
    for host in sorted(lab_hosts_present(lab)):
        pid = running(lab, host)
        print(f"{host}\t{'running, pid ' + str(pid) if pid else 'stopped'}")


# -- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default=os.environ.get("PBX_LAB", DEFAULT_LAB),
                        help=f"name prefix of everything the lab creates (default {DEFAULT_LAB})")
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="build the Debian image (once; cached in " f"{IMAGE_DIR})")
    image.add_argument("--rebuild", action="store_true")
    wheels = commands.add_parser("wheelhouse", help=f"build the wheels the hosts install ({WHEELHOUSE})")
    wheels.add_argument("--rebuild", action="store_true")
    start = commands.add_parser("up", help="boot the inventory's hosts")
    start.add_argument("-i", "--inventory", action="append", required=True)
    start.add_argument("--controller", default=DEFAULT_CONTROLLER,
                       help=f"the controller namespace's address (default {DEFAULT_CONTROLLER})")
    start.add_argument("hosts", nargs="*", metavar="HOST")
    stop = commands.add_parser("down", help="stop the hosts and remove everything of the lab")
    stop.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts (the network stays)")
    commands.add_parser("leftovers", help="list what is left of the lab; exit 1 if anything")
    commands.add_parser("status", help="the lab's hosts")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("lab.py: run as root (namespaces, mounts, nspawn)", file=sys.stderr)
        return 2
    lab = Lab(args.lab, getattr(args, "controller", DEFAULT_CONTROLLER))
    try:
        if args.command == "image":
            print(build_image(rebuild=args.rebuild))
        elif args.command == "wheelhouse":
            print(build_wheelhouse(rebuild=args.rebuild))
        elif args.command == "up":
            up(lab, args.inventory, args.hosts)
        elif args.command == "down":
            down(lab, args.hosts)
        elif args.command == "leftovers":
            found = leftovers(lab)
            for item in found:
                print(item)
            return 1 if found else 0
        elif args.command == "status":
            status(lab)
    except (LabError, subprocess.CalledProcessError) as exc:
        print(f"lab.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
