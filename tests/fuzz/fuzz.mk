# Placeholder until the differential fuzzer lands.
fuzz-check:
	@true
