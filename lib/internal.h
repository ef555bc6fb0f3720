/* SPDX-License-Identifier: MIT */
/*
 * The engine's internal helpers, which compat/ uses too: branch hints, the
 * user_data layout and lib's CQE kinds, the clock. What only compat/ needs
 * lives in compat/ (its CQE kinds: compat/epctx.h); the tests' fault hooks
 * are in lib/fault.h. Nothing here is exported: the build uses
 * -fvisibility=hidden and a version script.
 */
#ifndef RP_INTERNAL_H
#define RP_INTERNAL_H

#include <stdint.h>

#define rp__likely(x) __builtin_expect(!!(x), 1)
#define rp__unlikely(x) __builtin_expect(!!(x), 0)
#define RP_EXPORT __attribute__((visibility("default")))

/*
 * user_data of every SQE: | gen:32 | slot:24 | kind:8 |
 * The generation makes a completion that outlived its request (cancelled,
 * re-armed, closed) recognisable, as in libev's ev_iouring: the consumer
 * compares it with the slot's current generation and drops it if older.
 */
#define RP__UD_KIND_BITS 8
#define RP__UD_SLOT_BITS 24
#define RP__UD_SLOT_MAX ((1u << RP__UD_SLOT_BITS) - 1)

enum rp__ud_kind {
	RP__UD_IGNORE = 0,  /* cancels: nothing to deliver */
	RP__UD_TIMEOUT,	    /* the wait timeout of a ring without EXT_ARG */
	RP__UD_WAKE,	    /* the loop's cross-thread wake eventfd */
	RP__UD_POLL_READ,   /* a source waits for POLLIN|POLLPRI */
	RP__UD_POLL_WRITE,  /* a source waits for POLLOUT */
	RP__UD_OP_READ,	    /* completion model: recv, read, accept */
	RP__UD_OP_WRITE,    /* completion model: send, write, connect */
	RP__UD_RESYNC_READ, /* after a dropped CQE: a read op's cancel */
	RP__UD_RESYNC_WRITE, /* the same for a write op (lib/loop.c) */
	RP__UD_COMPAT,	    /* the first of compat's kinds (compat/epctx.h) */
};

/*
 * A POLL_REMOVE's own CQE carries its target's user_data with this bit in
 * the kind, so that a remove that failed says of what (kinds stay below).
 */
#define RP__UD_REMOVE_OF 0x80u

static inline uint64_t rp__ud(unsigned kind, uint32_t slot, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint64_t)slot << RP__UD_KIND_BITS | kind;
}

static inline unsigned rp__ud_kind(uint64_t ud)
{
	return ud & ((1u << RP__UD_KIND_BITS) - 1);
}

static inline uint32_t rp__ud_slot(uint64_t ud)
{
	return (ud >> RP__UD_KIND_BITS) & RP__UD_SLOT_MAX;
}

static inline uint32_t rp__ud_gen(uint64_t ud)
{
	return ud >> 32;
}

uint64_t rp__now_ns(void);

#endif /* RP_INTERNAL_H */
