/* The portable variant: the kernel bodies of kernels.inc compiled for the baseline ISA. */
#include "../arch.h"
#define TN_SUFFIX generic
#include "kernels.inc"
