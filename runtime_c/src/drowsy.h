/* DrowsyNet unit selection: which conv outputs are not computed. */
#ifndef TN_DROWSY_H
#define TN_DROWSY_H
#include "internal.h"

enum { TN_GRAN_ELEMENT = 0, TN_GRAN_ROW = 1, TN_GRAN_CHANNEL = 2 };

/* Counter-based hash (splitmix64 finaliser over seed, layer and unit index): the same mask for the same
 * seed on every platform, loop order and thread count. */
static inline uint32_t tn_unit_hash(uint64_t seed, uint32_t layer, uint64_t unit) {
    uint64_t z = seed ^ ((uint64_t)layer * 0x9E3779B97F4A7C15ull) ^ (unit * 0xD1B54A32D192ED03ull);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

static inline int tn_drowsy_active(const tn_layer_knobs *k) {
    return k->drowsy_select ? k->drowsy_drop_count > 0 : k->drowsy_threshold > 0;
}

/* 1 when the unit is dropped. rank is the plan's rank tensor for the granularity (importance only). */
static inline int tn_drowsy_drop(const tn_layer_knobs *k, uint64_t seed, uint32_t layer, uint64_t unit,
                                 const int32_t *rank) {
    if (k->drowsy_select) return rank[unit] < k->drowsy_drop_count;
    return tn_unit_hash(seed, layer, unit) < k->drowsy_threshold;
}

#endif
