/* inflight.c -- open-addressing table of upstream-side IDs (see inflight.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "circuit/inflight.h"
#include "core/err.h"

int inflight_init(struct inflight *t, uint32_t cap)
{
	if (cap == 0 || cap > 32768)
		return -EINVAL;
	uint32_t size = 16;
	while (size < cap * 2)
		size <<= 1;
	t->slots = calloc(size, sizeof(*t->slots));
	t->gone = calloc(65536 / 8, 1);
	if (!t->slots || !t->gone) {
		free(t->slots);
		free(t->gone);
		return -ENOMEM;
	}
	t->mask = size - 1;
	t->count = 0;
	t->pop_from = 0;
	t->cap = cap;
	t->has_gone = false;
	return 0;
}

void inflight_clear(struct inflight *t)
{
	/* the slots are free already: deletion leaves no tombstones */
	if (t->has_gone)
		memset(t->gone, 0, 65536 / 8);
	t->has_gone = false;
	t->pop_from = 0;
}

void inflight_deinit(struct inflight *t)
{
	free(t->slots);
	free(t->gone);
	t->slots = NULL;
	t->gone = NULL;
	t->count = 0;
}

static uint32_t find(const struct inflight *t, uint16_t id)
{
	uint32_t i = id & t->mask;
	while (t->slots[i].val) {
		if (t->slots[i].id == id)
			return i;
		i = (i + 1) & t->mask;
	}
	return UINT32_MAX;
}

int inflight_add(struct inflight *t, struct rnd *r, void *val, uint16_t *id)
{
	if (t->count >= t->cap)
		return ERR_FULL;
	for (int tries = 0; tries < INFLIGHT_ID_TRIES; tries++) {
		uint16_t cand = rnd_u16(r);
		uint32_t i = cand & t->mask;
		while (t->slots[i].val && t->slots[i].id != cand)
			i = (i + 1) & t->mask;
		if (t->slots[i].val)
			continue; /* this ID is taken: draw again */
		t->slots[i].val = val;
		t->slots[i].id = cand;
		t->gone[cand >> 3] &= (uint8_t)~(1u << (cand & 7));
		t->count++;
		*id = cand;
		return 0;
	}
	return ERR_NOID;
}

void *inflight_get(const struct inflight *t, uint16_t id)
{
	uint32_t i = find(t, id);
	return i == UINT32_MAX ? NULL : t->slots[i].val;
}

/* Backward-shift deletion: keep every later entry of the probe run reachable
 * from its home slot, so lookups never need tombstones. */
static void remove_at(struct inflight *t, uint32_t i)
{
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & t->mask;
		if (!t->slots[j].val)
			break;
		uint32_t home = t->slots[j].id & t->mask;
		/* may j's entry move to i? only if home is not in (i, j] cyclically */
		bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i].val = NULL;
	t->count--;
}

void *inflight_del(struct inflight *t, uint16_t id)
{
	uint32_t i = find(t, id);
	if (i == UINT32_MAX)
		return NULL;
	void *val = t->slots[i].val;
	remove_at(t, i);
	return val;
}

/* Draining a table pops from where the last pop was: the slots before it
 * are empty (backward shifts only fill the slot just emptied and later
 * ones), so a whole drain scans the table about once, not once per entry.
 * The scan still goes all the way round, so entries added meanwhile are found. */
void *inflight_pop_any(struct inflight *t)
{
	if (t->count == 0) {
		t->pop_from = 0;
		return NULL;
	}
	for (uint32_t n = 0; n <= t->mask; n++) {
		uint32_t i = (t->pop_from + n) & t->mask;
		if (t->slots[i].val) {
			void *val = t->slots[i].val;
			t->pop_from = i;
			remove_at(t, i);
			return val;
		}
	}
	return NULL;
}

void *inflight_abandon(struct inflight *t, uint16_t id)
{
	void *val = inflight_del(t, id);
	if (val) {
		t->gone[id >> 3] |= (uint8_t)(1u << (id & 7));
		t->has_gone = true;
	}
	return val;
}

bool inflight_take_gone(struct inflight *t, uint16_t id)
{
	uint8_t bit = (uint8_t)(1u << (id & 7));
	if (!(t->gone[id >> 3] & bit))
		return false;
	t->gone[id >> 3] &= (uint8_t)~bit;
	return true;
}
