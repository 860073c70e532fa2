"""What machine a sweep ran on: recorded in every result file."""
import os
import platform
import subprocess


def describe():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kib = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpu_model": cpu,
        "online_cpus": os.cpu_count(),
        "mem_gib": round(mem_kib / 2**20, 1),
        "loadavg_at_start": os.getloadavg(),  # the lab's own load is small: above ~1 someone else runs
        "kvm": os.path.exists("/dev/kvm"),
        "cpu_placement": "see 'placement'; the link emulator runs SCHED_FIFO 50 when chrt is available",
    }


def git_revision(root):
    try:
        return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
