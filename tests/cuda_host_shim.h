// Lets a CUDA kernel source compile as plain C++ for the host: the kernel becomes a function and the
// thread/block coordinates become thread-local globals that a launcher loop sets (tests only).
#pragma once
#include <cmath>
#define GPUDECODE_HOST_SHIM 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
struct gd_dim3 { unsigned int x, y, z; };
static thread_local gd_dim3 threadIdx, blockIdx, blockDim, gridDim;
