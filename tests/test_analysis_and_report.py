"""The analysis on a small fixture of records (no sweep), and the reports that render it."""

import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("scipy")

from energymeter import Measurement  # noqa: E402
from energymeter.cli import main  # noqa: E402
from energymeter.validation.records import store  # noqa: E402
from energymeter.validation.analysis.analysis import analyse  # noqa: E402
from energymeter.validation.records.record import EpochRecord, LoihiRecord, RunRecord, WindowRecord  # noqa: E402
from energymeter.validation.report.report import write_reports  # noqa: E402


def fixture(energy_of, n_seeds=4, lambdas=(0.0, 1e-3, 1e-2), provenance="measured", models=("mlp",), seed=0,
            full=True):
    """Records shaped like a sweep's, with inference energy a chosen function of E (and a random generator)."""
    rng = np.random.RandomState(seed)
    out = []
    for model in models:
        for lam in lambdas:
            for s in range(n_seeds):
                e = 100.0 / (1 + 1000 * lam) * (1 + 0.02 * rng.randn())
                joules = energy_of(e, rng)
                m = Measurement(name="inference", duration_s=1.0, energy_j={"gpu:0": joules * 10},
                                provenance={"gpu:0": provenance})
                history = tuple(EpochRecord(k, 1.0, 1.0, e, 0.5 + 0.1 * k, 0.5 + 0.1 * k + (0.02 if lam else 0), 1.0 * k,
                                            {"gpu:0": 10.0 * k * (1 - 5 * lam)}, 1e6 * k) for k in range(1, 5))
                out.append(RunRecord(
                    model=model, dataset="digits", lam=lam, seed=s, test_accuracy=0.95 + 0.001 * rng.randn(),
                    activation_energy=e, inference=WindowRecord(m, {}, 10, 32), epochs=4, history=history,
                    inference_flops_per_sample=1e6, train=WindowRecord(
                        Measurement(name="train", duration_s=4.0, energy_j={"gpu:0": 40.0}, provenance={"gpu:0": provenance}))
                    if full else None,
                    loihi=LoihiRecord(10, 20, 0.9, 0.92, e * 3, e * 50, 1e5, 0.5, {"loihi1": e * 1e-9}) if full else None,
                    run_index=len(out)))
    return out


def claims_of(analysis, kind, target_prefix=""):
    return [c for c in analysis.claims if c.kind == kind and c.figure.startswith(target_prefix)]


def test_energy_that_follows_e_is_tracks_with_the_log_ratio_it_should_have():
    a = analyse(fixture(lambda e, rng: 2.0 * e))
    claim = next(c for c in claims_of(a, "energy_tracking", "inference gpu:0") if c.subject["lambda"] == 1e-2)
    assert claim.verdict == "tracks"
    # The verdict reads the elasticity: energy proportional to E has a slope of 1 on the log-log scale.
    assert claim.estimate == pytest.approx(1.0, abs=0.05) and claim.low > 0.05
    # E at 1e-2 is 1/11 of E at 0, so the energy changed by about (1/11 - 1) = -90.9%.
    change = claim.details["energy_change"]
    assert change["estimate"] == pytest.approx(-90.9, abs=1.5)
    assert change["low"] > -100.0 and change["high"] < -10.0
    saving = next(c for c in claims_of(a, "energy_saving", "inference gpu:0") if c.subject["lambda"] == 1e-2)
    assert saving.verdict == "holds" and saving.estimate == pytest.approx(-90.9, abs=1.5)


def test_constant_energy_is_does_not_track():
    a = analyse(fixture(lambda e, rng: 50.0 * (1 + 0.001 * rng.randn())))
    claim = next(c for c in claims_of(a, "energy_tracking", "inference gpu:0") if c.subject["lambda"] == 1e-2)
    assert claim.verdict == "does_not_track"
    assert abs(claim.estimate) < 0.02 and abs(claim.details["energy_change"]["estimate"]) < 1.0


def test_noise_energy_is_inconclusive_and_says_how_many_seeds_would_resolve_it():
    # Pure noise (energy independent of E, lognormal SD 0.5) over 40 simulated 3-seed sweeps: a verdict
    # other than inconclusive is a false positive, which the 95% interval allows about 5% of the time
    # (2.5% a false fall, 2.5% a false rise); 35 of 40 leaves room for chance, 30 would not be noise.
    verdicts = []
    for sweep in range(40):
        a = analyse(fixture(lambda e, rng: 50.0 * math.exp(0.5 * rng.randn()), n_seeds=3, lambdas=(0.0, 1e-2),
                            seed=sweep, full=False))
        claim = next(c for c in claims_of(a, "energy_tracking", "inference gpu:0"))
        verdicts.append(claim.verdict)
        assert claim.low is None or claim.low > -100.0  # log scale: an energy change can never pass -100%
        if claim.verdict == "inconclusive":
            assert claim.seeds_needed is None or claim.seeds_needed > 3
    assert verdicts.count("inconclusive") >= 35, verdicts


def test_accuracy_claim_never_calls_a_rise_beyond_the_bound_within_it():
    records = fixture(lambda e, rng: e)
    records = [r if r.lam == 0 else RunRecord.from_dict({**r.to_dict(), "test_accuracy": r.test_accuracy + 0.0195})
               for r in records]
    claim = next(c for c in claims_of(analyse(records), "accuracy_change") if c.subject["lambda"] == 1e-2)
    assert claim.estimate == pytest.approx(1.95, abs=0.3)
    assert "within" not in claim.sentence and "rose by more than the 0.5 pp bound" in claim.sentence


def test_e_reduction_is_judged_against_the_paper_with_the_ratio_computed_on_the_log_scale():
    claim = next(c for c in claims_of(analyse(fixture(lambda e, rng: e)), "e_reduction") if c.subject["lambda"] == 1e-2)
    assert claim.estimate == pytest.approx(11.0, rel=0.05)
    assert claim.verdict == "fails"  # 11x is far from about 1000x
    assert "1,000x" in claim.sentence and "17x" not in claim.sentence  # v1's "to 6%" names no lambda: not equated


def test_correlations_are_within_groups_so_architecture_differences_do_not_make_one():
    # Two architectures whose energies differ 10x, each with energy independent of E: pooled, E and energy
    # would correlate only because the architectures differ.
    def build(model, level, offset):
        return [RunRecord.from_dict({**r.to_dict(), "model": model, "activation_energy": r.activation_energy * offset})
                for r in fixture(lambda e, rng, level=level: level * (1 + 0.05 * rng.randn()), seed=offset)]
    records = build("mlp", 1.0, 1) + build("cnn", 10.0, 10)
    a = analyse(records)
    e_corr = next(s for p, t, _, s in a.correlations if p == "E" and t.phase == "inference")
    assert abs(e_corr.estimate) < 0.5
    assert e_corr.verdict != "tracks"


def test_negative_net_energy_is_flagged_not_dropped():
    records = fixture(lambda e, rng: 5.0)
    records = [RunRecord.from_dict({**r.to_dict(), "inference": {**r.inference.to_dict(), "idle_power_w": {"gpu:0": 60.0}}})
               for r in records]
    a = analyse(records)
    assert any("negative" in w for w in a.warnings)
    claim = next(c for c in claims_of(a, "energy_tracking", "inference gpu:0") if c.subject["lambda"] == 1e-2)
    assert claim.verdict == "inconclusive" and "negative net energy" in claim.sentence


def test_efficiency_claim_uses_cost_to_the_baseline_accuracy_minus_half_a_point():
    a = analyse(fixture(lambda e, rng: e))
    energy = next(c for c in claims_of(a, "training_efficiency") if c.subject["quantity"] == "energy"
                  and c.subject["lambda"] == 1e-2)
    # lambda = 1e-2 runs draw 5% less per epoch and reach each accuracy 0.02 earlier: a gain above 5%.
    assert energy.estimate is not None and energy.estimate > 5.0


def test_report_renders_the_analysis_in_every_format(tmp_path, capsys):
    for r in fixture(lambda e, rng: 2.0 * e):
        store.append_record(tmp_path, r)
    analysis, paths = write_reports(tmp_path)
    assert sorted(p.name for p in paths) == ["report.csv", "report.html", "report.json", "report.md"]
    summary = json.loads((tmp_path / "report.json").read_text())
    kinds = {c["kind"] for c in summary["claims"]}
    assert {"e_reduction", "accuracy_change", "energy_tracking", "correlation", "training_efficiency"} <= kinds
    tracking = [c for c in summary["claims"] if c["kind"] == "energy_tracking"]
    assert all(c["verdict"] in ("tracks", "does_not_track", "inconclusive") and c["provenance"] for c in tracking)
    html = (tmp_path / "report.html").read_text()
    assert "class='v v-tracks'" in html and "data:image/png;base64," in html
    md = (tmp_path / "report.md").read_text()
    assert "**TRACKS**" in md
    header = (tmp_path / "report.csv").read_text().splitlines()[0]
    assert "inference gpu:0 net J per workload of 32 samples" in header and "train_duration_s" in header
    assert "training gpu:0 raw J" in header


def test_report_of_a_read_only_sweep_goes_to_another_directory(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for r in fixture(lambda e, rng: e, n_seeds=2):
        store.append_record(sweep, r)
    before = sorted(os.listdir(sweep))
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # the sweep directory refuses new files, even to root
        if os.path.dirname(os.fspath(path)) == str(sweep) and flags & os.O_CREAT:
            raise PermissionError(13, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "--out" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(sweep), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").exists()
    assert sorted(os.listdir(sweep)) == before


def test_report_keeps_the_sweeps_co2e_country(tmp_path):
    pytest.importorskip("codecarbon")
    for r in fixture(lambda e, rng: e, n_seeds=2):
        store.append_record(tmp_path, r)
    store.write_json_atomic(tmp_path / store.SWEEP_FILE, {"config": {"country": "FRA"}})
    assert main(["report", str(tmp_path), "--format", "md"]) == 0
    assert "CO2e (modeled: joules x FRA" in (tmp_path / "report.md").read_text()


def test_report_lists_unreadable_lines_on_stderr(tmp_path, capsys):
    for r in fixture(lambda e, rng: e, n_seeds=2):
        store.append_record(tmp_path, r)
    with open(tmp_path / store.RESULTS_FILE, "a") as handle:
        handle.write("garbage\n")
    assert main(["report", str(tmp_path), "--format", "json"]) == 0
    assert "results.jsonl line 7: not valid JSON" in capsys.readouterr().err





def test_plot_axes_carry_each_figures_own_unit_not_a_bare_energy_label():
    from energymeter.validation.analysis.figures import FigureId

    inference = FigureId("inference", "cpu:model", "net", "workload", "modeled")
    training = FigureId("training", "gpu:0", "net", "run", "measured")
    loihi = FigureId("loihi:sim", "loihi1", "raw", "input", "modeled")
    assert inference.kind.axis_label == "net J per workload"
    assert training.kind.axis_label == "net J per run"
    assert loihi.kind.axis_label == "modeled J per input"
    assert {f.unit for f in (inference, training, loihi)} == {"J"}


def with_reference(records, joules_of_index, domain=None):
    """The records with a reference window whose modeled CPU energy per repetition follows the run order (and,
    with ``domain``, that domain's measured energy too)."""
    out = []
    for i, r in enumerate(sorted(records, key=lambda r: r.run_index)):
        energy = {"cpu:model": joules_of_index(i) * 10, **({domain: joules_of_index(i) * 10} if domain else {})}
        m = Measurement(name="reference", duration_s=0.1, energy_j=energy,
                        provenance={"cpu:model": "modeled", **({domain: "measured"} if domain else {})})
        data = r.to_dict()
        data["reference"] = WindowRecord(m, {}, 10, 0).to_dict()
        out.append(RunRecord.from_dict(data))
    return out


def test_a_flat_reference_gives_no_drift_warning_and_a_drifting_one_does():
    flat = analyse(with_reference(fixture(lambda e, rng: e), lambda i: 1.0))
    assert flat.drift is not None and flat.drift.verdict == "stable"
    assert not any("drift" in w for w in flat.warnings)
    drifting = with_reference(fixture(lambda e, rng: e), lambda i: 1.0 + 0.05 * i)
    a = analyse(drifting)
    assert a.drift.verdict == "drifting" and a.drift.estimate > 0
    assert any("drifted" in w and "--drift-correction" in w for w in a.warnings)
    # The reference ran on the CPU: the GPU's figures have no reference of their class, stay as measured, and
    # the warning names them uncorrected.
    corrected = analyse(drifting, drift_correction=True)
    assert corrected.drift_corrected
    raw = {c.subject["lambda"]: c.estimate for c in claims_of(a, "energy_saving", "inference gpu:0 (net")}
    fixed = {c.subject["lambda"]: c.estimate for c in claims_of(corrected, "energy_saving", "inference gpu:0 (net")}
    assert raw == fixed
    assert any("left uncorrected" in w and "(gpu)" in w for w in corrected.warnings), corrected.warnings
    # On a GPU sweep the reference ran on the GPU: its trend corrects the GPU's figures.
    on_gpu = with_reference(fixture(lambda e, rng: e), lambda i: 1.0 + 0.05 * i, domain="gpu:0")
    gpu = analyse(on_gpu, sweep={"config": {"device": "cuda:0"}}, drift_correction=True)
    moved = {c.subject["lambda"]: c.estimate for c in claims_of(gpu, "energy_saving", "inference gpu:0 (net")}
    assert moved != raw and not any("left uncorrected" in w for w in gpu.warnings), gpu.warnings


def test_the_correction_is_a_fitted_trend_and_a_reference_moving_with_lambda_is_a_warning():
    from energymeter.validation.analysis.drift import fit_drift, trend_factors

    # A noisy reference around a 1%-per-run trend: the factors follow the trend, not each reading's noise.
    rng = np.random.default_rng(3)
    noisy = [1.01 ** i * math.exp(rng.normal(0, 0.05)) for i in range(40)]
    factors = trend_factors(noisy)
    ratios = [factors[i + 1] / factors[i] for i in range(39)]
    assert all(r == pytest.approx(ratios[0], rel=1e-9) for r in ratios) and 1.0 < ratios[0] < 1.02
    records = with_reference(fixture(lambda e, rng: e), lambda i: 1e-12 if i == 3 else 1.0 + 0.01 * i)
    fit = fit_drift(records, correct=True)
    assert all(0.8 < f["cpu"] < 1.2 for f in fit.factors.values())  # the broken reading is not in the trend
    lam_of = [r.lam for r in sorted(fixture(lambda e, rng: e), key=lambda r: r.run_index)]
    moving = with_reference(fixture(lambda e, rng: e), lambda i: 1.0 + 10 * lam_of[i])
    assert any("moves with lambda" in n for n in fit_drift(moving, correct=False).notes)


def test_busy_runs_are_those_with_other_work_or_a_high_load():
    from energymeter.validation.records.record import MachineLoad

    assert MachineLoad(load_avg_1m=0.1, other_cpu_share=0.5, logical_cpus=2).busy
    assert MachineLoad(load_avg_1m=9.0, other_cpu_share=0.0, logical_cpus=2).busy
    assert not MachineLoad(load_avg_1m=0.5, other_cpu_share=0.02, logical_cpus=2).busy


def test_load_sampler_computes_the_other_processes_share_of_the_machine():
    from energymeter.validation.run.machine_load import LoadSampler

    clock = {"total": 100.0, "own": 10.0}
    sampler = LoadSampler(period_s=0.01, total_cpu_s=lambda: clock["total"], own_cpu_s=lambda: clock["own"],
                          load_avg=lambda: 1.5, cpu_freq=lambda: 2000.0)
    with sampler:
        import time

        time.sleep(0.05)
        clock["total"] += 0.2  # the machine used 0.2 CPU-s, this process 0.05 of them
        clock["own"] += 0.05
    load = sampler.result
    cpus = load.logical_cpus
    assert load.load_avg_1m == 1.5 and load.cpu_freq_mhz == 2000.0 and load.samples >= 2
    assert 0 < load.other_cpu_share <= 0.15 / cpus / 0.05 + 1e-9


def test_a_second_claim_under_a_taken_name_is_refused_and_the_first_is_kept():
    from energymeter.validation.analysis.claim_registry import CLAIMS, ClaimRegistryError, claim

    first = CLAIMS["energy_tracking"]
    with pytest.raises(ClaimRegistryError, match="claim 'energy_tracking' is already registered"):
        @claim("energy_tracking")
        def impostor(figures, tables):
            return []
    assert CLAIMS["energy_tracking"] is first


def test_a_claim_registered_in_a_test_appears_in_the_analysis_reading_the_shared_figures():
    from energymeter.validation.analysis.claim_registry import claim, unregister
    from energymeter.validation.analysis.claims import Claim

    seen = {}

    @claim("test_runs_with_a_training_figure")
    def runs_with_training(figures, tables):
        seen["tables"] = tables
        count = sum(any(f.phase == "training" for f in run.figures) for run in figures.runs)
        return [Claim("test_count", {"runs": count}, "runs with a training figure", None, float(count), None, None,
                      0.95, count, "counted", "holds", f"{count} runs have a training figure")]

    try:
        a = analyse(fixture(lambda e, rng: e, n_seeds=2))
    finally:
        unregister("test_runs_with_a_training_figure")
    mine = [c for c in a.claims if c.kind == "test_count"]
    assert [c.estimate for c in mine] == [6.0]  # 3 lambdas x 2 seeds, each with a training window
    assert a.claims[-1] is mine[0]  # registered last, listed last
    assert seen["tables"] is a.tables  # the claim read the tables the report shows, not a recomputation
    assert "test_count" not in {c.kind for c in analyse(fixture(lambda e, rng: e, n_seeds=2)).claims}


def test_figure_labels_are_derived_from_their_fields_as_the_reports_name_them():
    from energymeter.validation.analysis.figures import FigureId

    assert FigureId("inference", "cpu:model", "net", "workload", "modeled").label == \
        "inference cpu:model (net J per workload)"
    assert FigureId("inference", "gpu:0", "raw", "workload", "measured").label == "inference gpu:0 (raw J per workload)"
    assert FigureId("training", "gpu:0", "net", "run", "measured").label == "training gpu:0 (net J)"
    assert FigureId("loihi:sim", "loihi1", "raw", "input", "modeled").label == "loihi:sim loihi1 (modeled J per input)"
    with pytest.raises(ValueError, match="no figure kind"):
        FigureId("training", "gpu:0", "net", "input", "measured")  # no per-input training figure exists


def test_each_runs_figures_carry_their_provenance_and_phase_as_fields():
    a = analyse(fixture(lambda e, rng: e, n_seeds=2, provenance="integrated"))
    ids = {t for row in a.lambda_rows for t in row.energy_change}
    assert {(t.phase, t.basis, t.per, t.provenance) for t in ids} == {
        ("inference", "net", "workload", "integrated"), ("inference", "raw", "workload", "integrated"),
        ("training", "net", "run", "integrated"), ("loihi:sim", "raw", "input", "modeled")}
    assert a.measured_domains == ("inference gpu:0 (net J per workload)", "inference gpu:0 (raw J per workload)",
                                  "training gpu:0 (net J)")


def test_the_reference_domain_is_the_widest_cpu_figure_there_is():
    from energymeter.measurement import Measurement
    from energymeter.validation.analysis.domains import reference_domain

    def declared(*names):  # old-style names: declarations inferred, as for a schema-2 record
        labels = {n: "modeled" if n.endswith("cpu:model") else "measured" for n in names}
        return Measurement("w", 1.0, energy_j=dict.fromkeys(names, 1.0), provenance=labels).domains

    assert reference_domain(declared("gpu:0", "cpu:0:package", "cpu:0:psys", "cpu:model")) == "cpu:0:psys"
    assert reference_domain(declared("cpu:model", "cpu:1:package", "cpu:0:package")) == "cpu:0:package"
    assert reference_domain(declared("rank1/cpu:model", "gpu:0")) == "rank1/cpu:model"
    assert reference_domain(declared("gpu:0")) is None


def test_the_reference_domain_is_chosen_by_declaration_whatever_the_names():
    from energymeter.domains import Domain
    from energymeter.validation.analysis.domains import reference_domain

    # An Apple-Silicon-like backend: a combined SoC figure containing its clusters, none named cpu:*.
    clusters = [Domain(f"soc0:cluster{i}", "cpu", "host", "measured", "hardware-counter") for i in (0, 1)]
    combined = Domain("soc0:combined", "soc", "host", "measured", "hardware-counter",
                      contains=("soc0:cluster0", "soc0:cluster1"))
    model = Domain("cpu:model", "cpu", "process", "modeled", "model")
    gpu = Domain("gpu:0", "gpu", "device", "measured", "hardware-counter")
    declarations = {d.name: d for d in (*clusters, combined, model, gpu)}
    assert reference_domain(declarations) == "soc0:combined"
    assert reference_domain({"cpu:model": model, "gpu:0": gpu}) == "cpu:model"  # no counter covers the CPU
    assert reference_domain({"gpu:0": gpu}) is None


def test_a_modeled_figure_of_this_machine_is_a_runtime_proxy_with_no_tracking_verdict():
    # Energy exactly proportional to E, but modeled (CPU seconds x a TDP share): a verdict on runtime, not energy.
    a = analyse(fixture(lambda e, rng: 2.0 * e, provenance="modeled", n_seeds=6))
    tracking = [c for c in a.claims if c.kind in ("energy_tracking", "correlation") and c.provenance == "modeled"
                and not c.figure.startswith("loihi")]
    assert tracking and all(c.verdict == "inconclusive" for c in tracking)
    assert all(c.sentence.count("a runtime proxy") == 1 for c in tracking)
    # The note replaces the verdict words whole: no half of an inconclusive reason is left before it.
    assert not [c.sentence for c in tracking if "inconclusive (" in c.sentence.split("a runtime proxy")[0]]
    loihi = [c for c in a.claims if c.kind == "energy_tracking" and c.figure.startswith("loihi")]
    assert loihi and any(c.verdict == "tracks" for c in loihi)  # a simulator's modeled energy keeps its verdicts


def _two_models_two_datasets(n_seeds=3, drop=None):
    out = []
    for model in ("mlp", "cnn"):
        for dataset in ("digits", "mnist-5k"):
            for r in fixture(lambda e, rng: 2.0 * e, n_seeds=n_seeds, models=(model,), seed=len(out)):
                if (model, dataset) == drop and r.seed > 0:
                    continue  # leave that cell with too few runs
                out.append(RunRecord(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                        "dataset": dataset, "run_index": len(out)}))
    return out


def test_the_architecture_anova_is_on_accuracy_with_the_energy_anova_as_a_second_table(tmp_path):
    a = analyse(_two_models_two_datasets())
    assert a.anova_skipped == {}
    terms = {c.subject["term"]: c for c in a.claims if c.kind == "architecture_anova"}
    assert set(terms) == {"model", "dataset", "model:dataset"}
    assert all(c.subject["response"] == "accuracy" for c in terms.values())
    assert terms["model"].paper == "partial eta^2 = 0.001"
    assert a.anova_energy and a.anova_energy[0]["term"] in ("model", "dataset", "model:dataset")


def test_an_anova_cell_with_too_few_runs_is_skipped_with_the_reason_and_the_report_stands(tmp_path):
    records = _two_models_two_datasets(n_seeds=1, drop=None)
    records = [r for r in records if not (r.model == "cnn" and r.dataset == "mnist-5k" and r.lam != 0.0)]
    a = analyse(records)
    assert "cnn x mnist-5k has 1 run(s); the ANOVA needs at least 2" in a.anova_skipped["accuracy"]
    assert not [c for c in a.claims if c.kind == "architecture_anova"]
    for r in records:
        store.append_record(tmp_path, r)
    assert main(["report", str(tmp_path), "--format", "md"]) == 0
    assert "Skipped: the cell cnn x mnist-5k has 1 run(s)" in (tmp_path / "report.md").read_text()


def test_loihi_verdicts_say_they_are_not_independent_and_spikes_vs_loihi_energy_is_no_finding():
    a = analyse(fixture(lambda e, rng: 2.0 * e, n_seeds=6))
    loihi = [c for c in a.claims if c.kind in ("energy_tracking", "correlation") and c.figure.startswith("loihi")]
    assert loihi and all("not independent evidence" in c.sentence for c in loihi)
    assert not [c for c in a.claims if "not independent evidence" in c.sentence and not c.figure.startswith("loihi")]
    pairs = {(proxy, target.phase) for proxy, target, _, _ in a.correlations}
    assert ("E", "loihi:sim") in pairs
    assert not pairs & {("spikes", "loihi:sim"), ("synops", "loihi:sim")}


def test_a_counter_that_never_moved_fails_its_figure_and_the_report_stands(tmp_path):
    records = fixture(lambda e, rng: 0.0)  # every inference window read 0 J (a frozen counter)
    records = [RunRecord(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "history": tuple(
        EpochRecord(h.epoch, h.loss, h.ce, h.activation_energy, h.train_accuracy, h.test_accuracy,
                    h.cumulative_duration_s, {d: 0.0 for d in h.cumulative_energy_j}, h.cumulative_flops)
        for h in r.history)}) for r in records]  # and so did every training epoch
    a = analyse(records)
    assert not any("could not be computed" in w for w in a.warnings)
    gains = [c for c in a.claims if c.kind == "training_efficiency" and "energy" in c.figure]
    assert gains and all(c.verdict == "inconclusive" for c in gains)
    changes = [c for row in a.lambda_rows for fid, c in row.energy_change.items() if fid.phase == "inference"]
    assert changes and all(c.verdict == "inconclusive" and "no positive energy" in c.reason for c in changes)
    for r in records:
        store.append_record(tmp_path, r)
    assert main(["report", str(tmp_path), "--format", "md"]) == 0


def test_an_elasticity_beyond_a_float_is_said_in_words_not_raised():
    from energymeter.validation.analysis.stats import elasticity

    # Energy falls 10**400-fold over a 10-fold fall of E: a slope of +400, whose tenfold change overflows.
    e = [1.0, 10.0, 1.0, 10.0]
    j = [1e-200, 1e200, 1e-200, 1e200]
    s = elasticity(j, e, [0, 0, 1, 1])
    assert s.estimate == pytest.approx(400.0) and "beyond a 1e300-fold fall" in s.reason


def test_a_claim_that_raises_is_one_warning_and_every_other_claim_is_kept():
    from energymeter.validation.analysis import claim_registry

    @claim_registry.claim("broken_for_test")
    def broken(figures, tables):
        raise OverflowError("math range error")

    try:
        a = analyse(fixture(lambda e, rng: 2.0 * e))
    finally:
        claim_registry.unregister("broken_for_test")
    assert any("the broken_for_test claims could not be computed (OverflowError: math range error)" in w
               for w in a.warnings)
    assert any(c.kind == "energy_tracking" for c in a.claims)


def test_training_efficiency_aims_every_seed_at_one_target_from_the_baselines_mean_accuracy():
    a = analyse(fixture(lambda e, rng: 2.0 * e))
    claims = [c for c in claims_of(a, "training_efficiency") if c.subject["lambda"] == 1e-2]
    assert {c.subject["quantity"] for c in claims} == {"energy", "flops", "time"}
    # The fixture's lambda = 0 runs end at accuracy 0.5 + 0.1 * 4 = 0.9: one target, 90% - 0.5 pp.
    assert all(c.details["target_accuracy_pct"] == pytest.approx(89.5) for c in claims)
    assert all("to 89.50% accuracy (the lambda = 0 runs' mean final accuracy 90.00%" in c.sentence for c in claims)
    assert all("interpolated within the epoch" in c.sentence for c in claims)
    # The fixture's FLOPs per epoch are the same at every lambda: the sentence says what a gain then means.
    assert all(c.details["same_flops_per_epoch"] for c in claims)
    assert all("faster convergence, not cheaper computation" in c.sentence for c in claims)


def test_the_sesoi_decides_which_change_matters_and_the_report_takes_it_as_a_flag(tmp_path, capsys):
    # Energy 7% lower at lambda = 1e-2, precisely: a change that matters at a SESOI of 5%, not at 10%.
    def energy_of(e, rng):
        return 50.0 * (0.93 if e < 50 else 1.0) * (1 + 0.002 * rng.randn())

    records = fixture(energy_of, n_seeds=5, lambdas=(0.0, 1e-2), full=False)

    def verdict(a):
        return next(c for c in claims_of(a, "energy_saving", "inference gpu:0 (raw")).verdict

    assert verdict(analyse(records)) == "fails"  # a saving of 7% is not one of 10%
    five = analyse(records, sesoi=0.05)
    assert verdict(five) == "holds" and five.to_dict()["thresholds"]["energy_sesoi"] == 0.05
    assert "saves more than 5% (holds)" in next(c for c in claims_of(five, "energy_saving")
                                                if c.verdict == "holds").sentence
    for r in records:
        store.append_record(tmp_path, r)
    assert main(["report", str(tmp_path), "--format", "json", "--sesoi", "5"]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["thresholds"]["energy_sesoi"] == 0.05
    capsys.readouterr()
    for bad in ("0", "100", "nan", "-3"):
        assert main(["report", str(tmp_path), "--sesoi", bad]) == 2
    assert "--sesoi" in capsys.readouterr().err


def test_a_reference_far_outside_the_plausible_band_leaves_its_run_uncorrected_and_named():
    # One reference reads 1e-12 of the others: as a factor it would multiply that run's energy by about 1e12.
    records = with_reference(fixture(lambda e, rng: e), lambda i: 1e-12 if i == 3 else 1.0 + 0.01 * i)
    broken = sorted(records, key=lambda r: r.run_index)[3].key
    a = analyse(records, drift_correction=True)
    notes = [w for w in a.warnings if w.startswith("Drift correction:")]
    assert len(notes) == 1 and f"{len(records) - 1} of {len(records)} runs corrected" in notes[0]
    assert notes[0].split("left uncorrected")[1].split(": ", 1)[1].startswith(f"{broken} (")
    assert any(w.startswith("Reference refused") and broken in w and "outside 0.5-2x" in w for w in a.warnings)
    assert a.drift_corrected
    uncorrected = analyse(records)  # without the flag nothing is said about correction
    assert not [w for w in uncorrected.warnings if w.startswith("Drift correction:")]


def test_runs_without_a_usable_reference_are_named_when_correction_is_asked():
    records = fixture(lambda e, rng: e)  # no reference windows at all
    a = analyse(records, drift_correction=True)
    note = next(w for w in a.warnings if w.startswith("Drift correction:"))
    assert f"0 of {len(records)} runs corrected" in note and "(no usable reference for these device classes)" in note


def test_the_anova_cell_rule_holds_for_one_factor_designs_too():
    from energymeter.validation.analysis.intervals import AnovaSkipped, anova

    rng = np.random.RandomState(3)
    models = ["mlp"] * 6 + ["cnn"] * 6
    values = [1.0 + 0.1 * rng.randn() for _ in range(6)] + [2.0 + 0.1 * rng.randn() for _ in range(6)]
    rows = anova(models, ["digits"] * 12, values, [0.0, 1e-2] * 6)
    assert [r["term"] for r in rows] == ["model"] and rows[0]["p"] < 0.05
    with pytest.raises(AnovaSkipped, match="the cell cnn has 1 run"):
        anova(models[:7], ["digits"] * 7, values[:7])


@pytest.mark.parametrize("sesoi", [0.0, 1.0, 10.0, float("nan")])
def test_a_sesoi_that_is_no_fraction_is_refused_before_any_figure(sesoi):
    with pytest.raises(ValueError, match="sesoi is a fraction in"):
        analyse(fixture(lambda e, rng: e, n_seeds=2, lambdas=(0.0, 1e-2), full=False), sesoi=sesoi)
