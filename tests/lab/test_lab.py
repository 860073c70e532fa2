"""Unit tests of the interconnect lab's Python side (scripts/lab): the
latency model, cell metrics, summaries, the report/plots and cleanup of a
lab left behind by a crash."""
import json
import os
import subprocess
import tempfile
import unittest

from ssi_lab import model, plots, profiles, runner, sweep, topology

FLOOR = {"uffd_fault_us": 20.0, "write_protect_us": 40.0, "drop_us": 8.0}


def outcome(nodes):
    return {"exit_code": 0, "node_reports": [
        {"id": i, "stats": {"elapsed_ns": 2_000_000 * (i + 1), "ops": 100, "read_faults": 10,
                            "read_fault_mean_ns": 100_000 * (i + 1), "write_faults": 0,
                            "write_fault_mean_ns": 0, "upgrade_faults": 5, "upgrade_fault_mean_ns": 50_000,
                            "invalidations_sent": 3, "page_bytes_received": 4096,
                            "read_home_faults": 6, "read_home_fault_mean_ns": 90_000 * (i + 1),
                            "read_forwarded_faults": 4 * i, "read_forwarded_fault_mean_ns": 160_000,
                            "read_forwarded_delays": 8 * i}}
        for i in range(nodes)]}


class ModelTest(unittest.TestCase):
    def test_wire_time_of_a_page(self):
        self.assertAlmostEqual(model.wire_us(10.0), 4160 * 8 / 10e3)
        self.assertEqual(model.wire_us(0), 0.0)

    def test_parts_add_up_and_downgrade_adds_the_write_protect(self):
        m = model.expected_fault_us(FLOOR, 100.0, 1.0)
        self.assertAlmostEqual(m["total_us"], 20.0 + 100.0 + 4160 * 8 / 1e3)
        d = model.expected_fault_us(FLOOR, 100.0, 1.0, downgrade=True)
        self.assertAlmostEqual(d["total_us"] - m["total_us"], 40.0)

    def test_each_path_has_its_minimum_message_delays(self):
        m = model.path_models(FLOOR, 100.0, 0)
        self.assertEqual({p: v["delays"] for p, v in m.items()},
                         {"read_home": 2, "read_forwarded": 3, "write_home": 2, "write_sharers": 3,
                          "write_forwarded": 3})
        self.assertAlmostEqual(m["read_home"]["total_us"], 20.0 + 100.0)  # one round trip
        self.assertAlmostEqual(m["write_sharers"]["total_us"], 20.0 + 150.0)  # one and a half
        self.assertAlmostEqual(m["read_forwarded"]["total_us"], 20.0 + 40.0 + 150.0)  # + write-protect
        # Measured delays (self-messages cost none) replace the default.
        m = model.path_models(FLOOR, 100.0, 0, {"read_forwarded": 2.0, "write_home": None})
        self.assertAlmostEqual(m["read_forwarded"]["total_us"], 20.0 + 40.0 + 100.0)
        self.assertEqual(m["write_home"]["delays"], 2)

    def test_explain_names_ratio_and_excess(self):
        m = model.expected_fault_us(FLOOR, 80.0, 0)
        self.assertIn("x2.00, +100 us", model.explain(200.0, m))
        self.assertEqual(model.explain(None, m), "no faults of this kind")


class MetricsTest(unittest.TestCase):
    def test_cell_metrics_from_node_counters(self):
        m = runner.metrics(outcome(2))
        self.assertEqual(m["time_ms"], 4.0)  # the slowest node
        self.assertEqual(m["ops"], 200)
        self.assertAlmostEqual(m["throughput_ops_s"], 200 / 0.004)
        self.assertAlmostEqual(m["read_fault_us"], 150.0)  # weighted by fault counts
        self.assertIsNone(m["write_fault_us"])
        self.assertEqual(m["invalidations"], 6)
        self.assertEqual(m["read_home_faults"], 12)
        self.assertAlmostEqual(m["read_home_fault_us"], 135.0)  # (6*90 + 6*180) / 12
        self.assertEqual(m["read_forwarded_faults"], 4)
        self.assertAlmostEqual(m["read_forwarded_fault_us"], 160.0)
        self.assertIsNone(m["write_sharers_fault_us"])
        self.assertAlmostEqual(m["read_forwarded_delays_mean"], 2.0)  # the requester was the home

    def test_outcome_without_measured_phase_is_rejected(self):
        with self.assertRaises(runner.CellFailed):
            runner.metrics({"node_reports": [{"stats": {"ops": 1}}]})

    def test_guest_cell_metrics_are_the_wall_time_and_dsm_counters(self):
        o = outcome(2)
        o["wall_ns"] = 5_000_000
        m = runner.guest_metrics(o)
        self.assertEqual(m["time_ms"], 5.0)
        self.assertIsNone(m["throughput_ops_s"])
        self.assertAlmostEqual(m["read_fault_us"], 150.0)
        with self.assertRaises(runner.CellFailed):
            runner.guest_metrics(outcome(2))  # no wall time

    def test_guest_cells_use_two_vcpus_at_least(self):
        self.assertEqual([profiles.guest_vcpus(n) for n in (1, 2, 4)], [2, 2, 4])

    def test_link_rtt_is_the_median_over_nodes(self):
        o = {"node_reports": [{"stats": {"rtt_median_us": v}} for v in (30, 90, 50)]}
        self.assertEqual(runner.link_rtt_us(o), 50.0)

    def test_summary_min_median_max(self):
        s = sweep.summarize([{"time_ms": 3.0}, {"time_ms": 1.0}, {"time_ms": 2.0}])
        self.assertEqual(s["time_ms"], {"min": 1.0, "median": 2.0, "max": 3.0})


def synthetic_result():
    cells = []
    profs = [{"name": "local", "delay_us": 0.0, "jitter_us": 0.0, "rate_gbit": 0.0, "local": True,
              "rtt_us": {"tcp": 50.0}}]
    for d in (0, 100):
        profs.append({"name": f"d{d}us-10g", "delay_us": float(d), "jitter_us": 0.0, "rate_gbit": 10.0,
                      "local": False, "rtt_us": {"tcp": 60.0 + 2 * d}})
    for p in profs:
        for n in (1, 2):
            for w in plots.WORKLOAD_ORDER:
                reps = [runner.metrics(outcome(n)) for _ in range(2)]
                cells.append({"workload": w, "nodes": n, "profile": p["name"], "transport": "tcp",
                              "delay_us": p["delay_us"], "rate_gbit": p["rate_gbit"], "status": "ok",
                              "repeats": reps, "summary": sweep.summarize(reps),
                              "model": {"read": model.expected_fault_us(FLOOR, p["rtt_us"]["tcp"], 10.0),
                                        "write": model.expected_fault_us(FLOOR, p["rtt_us"]["tcp"], 10.0),
                                        "paths": model.path_models(FLOOR, p["rtt_us"]["tcp"], 10.0)}})
    cells.append({"workload": "guest-counter", "status": "skipped", "reason": "no /dev/kvm"})
    return {"schema": sweep.SCHEMA, "created": "now", "quick": True, "git": "abc", "shaper": "linkemu",
            "repeats": 2, "floor": FLOOR, "profiles": profs, "cells": cells,
            "machine": {"cpu_model": "test cpu", "online_cpus": 2, "mem_gib": 1, "kernel": "k",
                        "loadavg_at_start": [0.1, 0.2, 0.3], "kvm": False, "cpu_placement": "none"}}


class ReportTest(unittest.TestCase):
    def test_plots_and_report_are_written(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("python3-matplotlib is not installed (scripts/deps installs it)")
        with tempfile.TemporaryDirectory() as d:
            paths = plots.render(synthetic_result(), d)
            for name in ("latency_vs_delay.png", "speedup_vs_nodes.png", "fault_mix.png"):
                with open(paths[name], "rb") as fh:
                    self.assertEqual(fh.read(8), b"\x89PNG\r\n\x1a\n", name)
            with open(paths["report.md"]) as fh:
                text = fh.read()
            self.assertIn("| d100us-10g | 100.0 | 10.0 | tcp 260 |", text)
            self.assertIn("guest-counter: skipped: no /dev/kvm", text)
            self.assertIn("lab-prodcons | 2 | local | tcp | 4 [4-4] ms", text)

    def test_report_has_no_model_on_one_node_and_a_complete_model_sentence(self):
        text = plots.report(synthetic_result())
        one_node = [ln for ln in text.splitlines() if ln.startswith("| lab-counter | 1 |")]
        self.assertTrue(one_node)
        for ln in one_node:
            self.assertEqual(ln.count("(-)"), 2, ln)
        sentence = next(ln for ln in text.splitlines() if ln.startswith("Model: "))
        self.assertTrue(sentence.endswith("."), sentence)
        self.assertIn("round trip", sentence)
        # The per-path table: measured vs the path's minimum (2 nodes, d100: rtt 260 us).
        self.assertIn("| lab-counter | 2 | d100us-10g | tcp | read_forwarded | 4 | 160 | 3 | 453 | 0.35x |",
                      text)

    def test_times_are_in_a_readable_unit(self):
        self.assertEqual(plots._time({"min": 0.0121, "median": 0.0234, "max": 0.05}), "23.4 [12.1-50] us")
        self.assertEqual(plots._time({"min": 1.5, "median": 2.25, "max": 3.0}), "2.25 [1.5-3] ms")
        self.assertEqual(plots._time({"min": 12000, "median": 15000, "max": 20000}), "15 [12-20] s")

    def test_workloads_with_the_same_model_share_one_line(self):
        same = [(0, 100.0), (100, 300.0)]
        groups = plots._model_groups({"a": same, "b": list(same), "c": [(0, 140.0), (100, 340.0)]})
        self.assertEqual(sorted(ws for ws, _ in groups), [["a", "b"], ["c"]])


class CommandLineTest(unittest.TestCase):
    """Every error of scripts/lab is one line on stderr and exit 2."""

    def run_lab(self, *args):
        lab = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lab")
        return subprocess.run([lab, *args], capture_output=True, text=True, timeout=60)

    def expect_one_line_error(self, p, needle):
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        self.assertTrue(p.stderr.startswith("ssi lab: error: "), p.stderr)
        self.assertIn(needle, p.stderr)

    def test_plot_of_a_missing_file(self):
        self.expect_one_line_error(self.run_lab("plot", "/nonexistent.json"), "No such file")

    def test_plot_of_a_file_that_is_not_json(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write("{")
            f.flush()
            self.expect_one_line_error(self.run_lab("plot", f.name), "is not JSON")

    def test_plot_of_results_missing_fields(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"schema": sweep.SCHEMA}, f)
            f.flush()
            self.expect_one_line_error(self.run_lab("plot", f.name, "--out", tempfile.gettempdir()),
                                       "malformed results")

    def test_bad_arguments(self):
        self.expect_one_line_error(self.run_lab("sweep", "--nodes", "0"), "node counts")
        self.expect_one_line_error(self.run_lab("nonsense"), "invalid choice")


@unittest.skipUnless(os.geteuid() == 0, "needs root to create network namespaces")
class CleanupTest(unittest.TestCase):
    def test_lab_of_a_dead_owner_is_removed_and_cleanup_is_idempotent(self):
        ns = f"ssilab-t{os.getpid()}-n0"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        os.makedirs(topology.STATE_DIR, exist_ok=True)
        dead = subprocess.Popen(["true"])
        dead.wait()
        path = os.path.join(topology.STATE_DIR, f"t{os.getpid()}.json")
        with open(path, "w") as fh:
            json.dump({"owner": dead.pid, "namespaces": [ns]}, fh)
        removed = topology.cleanup()
        self.assertIn(f"t{os.getpid()}", removed)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        self.assertNotIn(ns, listed)
        self.assertFalse(os.path.exists(path))
        self.assertNotIn(f"t{os.getpid()}", topology.cleanup())


if __name__ == "__main__":
    unittest.main()
