/* SPDX-License-Identifier: MIT */
/*
 * The fuzzers' source of choices (tests/fuzz/): a seeded xorshift PRNG,
 * or, in the libFuzzer build of epoll_fuzz.c, the input's bytes. Shared by
 * epoll_fuzz.c and sock_fuzz.c, one copy per program (static).
 */
#ifndef FUZZ_RNG_H
#define FUZZ_RNG_H

#include <stddef.h>
#include <stdint.h>

static uint64_t rng;

/*
 * The libFuzzer build (EPOLL_FUZZ_LIBFUZZER) draws the generator's choices
 * from the input instead: fz_take() reads the next bytes, and the input's
 * end (zeros from then on, fz_eof set) ends the sequence. A choice among
 * up to 256 takes one byte, so a mutated byte changes one decision.
 */
static const uint8_t *fz_data __attribute__((unused));
static size_t fz_len __attribute__((unused)), fz_pos;
static int fz_eof __attribute__((unused));

static inline uint64_t fz_take(unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		if (fz_pos >= fz_len) {
			fz_eof = 1;
			break;
		}
		v |= (uint64_t)fz_data[fz_pos++] << (8 * i);
	}
	return v;
}

static inline uint64_t rnd(void)
{
	uint64_t x = rng;

	if (fz_data)
		return fz_take(8);

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static inline uint32_t rn(uint32_t n)
{
	if (fz_data)
		return (uint32_t)(fz_take(n <= 0x100 ? 1 : n <= 0x10000 ? 2 : 4) %
				  n);
	return (uint32_t)((rnd() >> 32) % n);
}

static inline void rng_seed(uint64_t seed)
{
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	z ^= z >> 31;
	rng = z ? z : 1;
}

#endif /* FUZZ_RNG_H */
