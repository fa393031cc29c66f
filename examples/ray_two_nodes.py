"""A two-node Ray cluster on this machine, to try `portable bench --cluster` without a fleet.

    python examples/ray_two_nodes.py            # prints the address, runs until Ctrl-C

Node 1 (the head) has 2 CPUs; node 2 has 1 CPU and advertises one `NPU`, Ray's
resource name for an Ascend NPU, so placement by resource can be seen. Both bind to
127.0.0.2: a client given 127.0.0.1 or localhost rewrites it to the machine's
outward address, where a loopback-only cluster is not listening. Session files go
to a temporary folder; Ctrl-C stops the cluster (only the processes started here).
"""

from __future__ import annotations

import os
import signal
import tempfile

ADDRESS_IP = "127.0.0.2"


def main() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
        signal.signal(signum, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="ray-try-") as folder:
        os.environ["RAY_TMPDIR"] = folder
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True,
                          head_node_args={"node_ip_address": ADDRESS_IP, "num_cpus": 2,
                                          "include_dashboard": False})
        try:
            cluster.add_node(node_ip_address=ADDRESS_IP, num_cpus=1, resources={"NPU": 1})
            print(f"cluster up: --cluster {cluster.address}   (Ctrl-C stops it)", flush=True)
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            cluster.shutdown()


if __name__ == "__main__":
    main()
