# rpbench and `make demo`'s matrix (placeholder until tools/bench lands).
BENCH_BIN :=

demo-run:
	@echo "demo: the benchmark matrix is not built yet (tools/bench)"
