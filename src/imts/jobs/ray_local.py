"""A real Ray cluster on one machine: a head and worker-node processes, each its own raylet.

For trying ``executor: ray`` on one machine, the tests (kill a node's raylet, lose the head) and
``benchmarks/ray_scale.py``. Every node is a separate raylet process, as on separate machines; the
dashboard is off and the object stores are small. The head keeps its GCS port across a restart, so
a pool file's ``ray_address`` stays valid when the head comes back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imts.core.net import free_port

OBJECT_STORE_BYTES = 100 * 2**20


class LocalRayCluster:
    """``start()`` a head of ``head_cpus`` and one node per entry of ``node_cpus``; ``stop()`` ends all.

    The Ray workers import IMTS from the tree this module comes from (PYTHONPATH is set for them).
    """

    def __init__(self, head_cpus: int = 1, node_cpus: tuple[int, ...] = (1,)) -> None:
        self.head_cpus, self.node_cpus = head_cpus, node_cpus
        self.port = free_port()
        self.cluster: Any = None
        self.nodes: list[Any] = []
        self._node_cpus: dict[int, int] = {}  # id(node) -> its CPUs

    @property
    def cpus(self) -> int:
        """The CPUs of the head and every node alive now."""
        return self.head_cpus + sum(self._node_cpus.get(id(n), 0) for n in self.nodes)

    @property
    def address(self) -> str:
        """The head's GCS address (this machine's address, the same port after a restart)."""
        from ray._private.services import get_node_ip_address

        return f"{get_node_ip_address()}:{self.port}"

    def start(self) -> LocalRayCluster:
        from ray.cluster_utils import Cluster

        src = str(Path(__file__).resolve().parents[2])
        paths = [src, *(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(":") if p)]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # the raylets pass it on
        self.cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args=self._args(self.head_cpus, gcs_server_port=self.port),
        )
        self.nodes = [self.add_node(c) for c in self.node_cpus]
        return self

    def _args(self, cpus: int, **more: Any) -> dict[str, Any]:
        return dict(
            num_cpus=cpus,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            **more,
        )

    def add_node(self, cpus: int = 1) -> Any:
        """One more worker node (a raylet process) joining the head."""
        node = self.cluster.add_node(**self._args(cpus))
        self.cluster.wait_for_nodes()
        self._node_cpus[id(node)] = cpus
        return node

    def kill_raylet(self, node: Any) -> None:
        """The node's raylet dies as in a crash (SIGKILL); its workers die with it."""
        node.kill_raylet(check_alive=False)
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)

    def stop(self) -> None:
        """Every process of the cluster ends (the head too)."""
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster, self.nodes = None, []
