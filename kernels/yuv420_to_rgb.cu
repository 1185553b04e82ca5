// gpudecode: YUV 4:2:0 surfaces from NVDEC (NV12, or P016 for 10/12-bit) to RGB uint8.
//
// Plain CUDA C++: compiles with nvcc, with NVRTC (CuPy RawModule), and for the host through
// tests/cuda_host_shim.h, so the arithmetic and indexing of this exact file are tested on machines
// without a GPU. Keep it elementwise: no shared memory, no __syncthreads.
//
// Layout of one source frame: `luma` rows of `pitch` bytes; `chroma` rows of `pitch` bytes holding
// interleaved U,V samples at half resolution (rounded up for odd sizes). Samples are 1 byte (NV12) or
// 2 bytes little-endian with the value in the high bits (P016: value = word >> (16 - bit_depth)).
// Chroma is taken from the nearest sample of the 2x2 block (what FFmpeg's 8-bit fast path does).
//
// The 3x4 matrix m0..m11 (row-major) maps (Y, U, V, 1) in code values to RGB in 0..255; the host builds it from the
// stream's matrix, range and bit depth exactly as the CPU path chooses them.
//
// Grid: x over width, y over height, z over frames (frame f reads luma/chroma at f * src_frame_stride
// and writes dst at f * dst_frame_stride). `planar` = 1 writes CHW, 0 writes HWC.

#ifndef GPUDECODE_HOST_SHIM
#define GD_DEVICE __device__ __forceinline__
#else
#define GD_DEVICE inline
#endif

struct Mat34 {
    float m[12];
};

GD_DEVICE unsigned char gd_to_u8(float v) {
    float r = rintf(v);
    r = r < 0.0f ? 0.0f : (r > 255.0f ? 255.0f : r);
    return (unsigned char)r;
}

GD_DEVICE void gd_store(unsigned char* __restrict__ out, long long plane, long long idx, int planar,
                        float y, float u, float v, const Mat34& m) {
    unsigned char r = gd_to_u8(m.m[0] * y + m.m[1] * u + m.m[2] * v + m.m[3]);
    unsigned char g = gd_to_u8(m.m[4] * y + m.m[5] * u + m.m[6] * v + m.m[7]);
    unsigned char b = gd_to_u8(m.m[8] * y + m.m[9] * u + m.m[10] * v + m.m[11]);
    if (planar) {
        out[idx] = r;
        out[plane + idx] = g;
        out[2 * plane + idx] = b;
    } else {
        out[3 * idx] = r;
        out[3 * idx + 1] = g;
        out[3 * idx + 2] = b;
    }
}

// One body for both sample sizes: T is unsigned char (NV12, shift 0) or unsigned short (P016).
template <typename T>
GD_DEVICE void gd_convert(const unsigned char* __restrict__ luma, const unsigned char* __restrict__ chroma,
                          long long src_frame_stride, int pitch, int width, int height,
                          unsigned char* __restrict__ dst, long long dst_frame_stride, int planar,
                          const Mat34& m, int shift) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) return;
    long long f = blockIdx.z;
    const T* lrow = (const T*)(luma + f * src_frame_stride + (long long)y * pitch);
    const T* crow = (const T*)(chroma + f * src_frame_stride + (long long)(y >> 1) * pitch);
    float yv = (float)(lrow[x] >> shift);
    float uv = (float)(crow[(x >> 1) * 2] >> shift);
    float vv = (float)(crow[(x >> 1) * 2 + 1] >> shift);
    long long plane = (long long)width * height;
    gd_store(dst + f * dst_frame_stride, plane, (long long)y * width + x, planar, yv, uv, vv, m);
}

extern "C" __global__ void yuv420_8_to_rgb(
    const unsigned char* __restrict__ luma, const unsigned char* __restrict__ chroma,
    long long src_frame_stride, int pitch, int width, int height,
    unsigned char* __restrict__ dst, long long dst_frame_stride, int planar,
    float m0, float m1, float m2, float m3, float m4, float m5,
    float m6, float m7, float m8, float m9, float m10, float m11) {
    const Mat34 m = {{m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11}};
    gd_convert<unsigned char>(luma, chroma, src_frame_stride, pitch, width, height, dst, dst_frame_stride, planar,
                              m, 0);
}

extern "C" __global__ void yuv420_16_to_rgb(
    const unsigned char* __restrict__ luma, const unsigned char* __restrict__ chroma,
    long long src_frame_stride, int pitch, int width, int height,
    unsigned char* __restrict__ dst, long long dst_frame_stride, int planar,
    float m0, float m1, float m2, float m3, float m4, float m5,
    float m6, float m7, float m8, float m9, float m10, float m11, int shift) {
    const Mat34 m = {{m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11}};
    gd_convert<unsigned short>(luma, chroma, src_frame_stride, pitch, width, height, dst, dst_frame_stride, planar,
                               m, shift);
}
