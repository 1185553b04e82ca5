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

// ---------------------------------------------------------------------------------------------------------------
// Fused shaping: the same conversion, then the container's rotation, crops and an antialiased bilinear resize
// (torch's interpolate(mode="bilinear", antialias=True) weights), written as uint8 or float32 in one pass.
//
// The resize is separable and given as tables the host computes once per output size: output column ox reads
// upright columns x_start[ox] + i for i < x_taps with weights x_w[ox * x_taps + i] (rows likewise). Crops are folded
// into the tables (a crop before the resize shifts x_start, a crop after it selects table rows); no resize at all is
// one tap of weight 1. Taps past a column's real support have weight 0 and are never read: skipping them is what
// keeps every read inside the surface.
//
// Upright (ux, uy) maps to coded (cx, cy) by `rot` counter-clockwise quarter turns (numpy.rot90's k). Each source
// pixel is converted to RGB in 0..255 and clamped, but not rounded, before filtering (the CPU path filters RGB
// values). The output value is acc * scale[c] + offset[c]: (1, 0) for uint8 (rounded, clamped), (1/255, 0) for
// float32 in [0, 1], (1/(255 std), -mean/std) for normalized float32; acc is clamped to 0..255 first, as the CPU's
// RGB is (a bicubic filter overshoots at edges).

GD_DEVICE float gd_clamp255(float v) { return v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v); }

GD_DEVICE void gd_unrotate(int rot, int ux, int uy, int coded_w, int coded_h, int* cx, int* cy) {
    if (rot == 1) {
        *cx = coded_w - 1 - uy;
        *cy = ux;
    } else if (rot == 2) {
        *cx = coded_w - 1 - ux;
        *cy = coded_h - 1 - uy;
    } else if (rot == 3) {
        *cx = uy;
        *cy = coded_h - 1 - ux;
    } else {
        *cx = ux;
        *cy = uy;
    }
}

struct Resample {
    const int* x_start;
    const float* x_w;
    int x_taps;
    const int* y_start;
    const float* y_w;
    int y_taps;
    float scale[3];
    float offset[3];
};

template <typename T>
GD_DEVICE void gd_resample(const unsigned char* __restrict__ luma, const unsigned char* __restrict__ chroma,
                           long long src_frame_stride, int pitch, int coded_w, int coded_h, void* __restrict__ dst,
                           long long dst_frame_stride, int out_w, int out_h, int planar, int out_float, int rot,
                           const Resample& r, const Mat34& m, int shift) {
    int ox = blockIdx.x * blockDim.x + threadIdx.x;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= out_w || oy >= out_h) return;
    long long f = blockIdx.z;
    const unsigned char* L = luma + f * src_frame_stride;
    const unsigned char* C = chroma + f * src_frame_stride;
    float acc[3] = {0.0f, 0.0f, 0.0f};
    int x0 = r.x_start[ox], y0 = r.y_start[oy];
    for (int j = 0; j < r.y_taps; ++j) {
        float wy = r.y_w[(long long)oy * r.y_taps + j];
        if (wy == 0.0f) continue;
        for (int i = 0; i < r.x_taps; ++i) {
            float wx = r.x_w[(long long)ox * r.x_taps + i];
            if (wx == 0.0f) continue;
            int cx, cy;
            gd_unrotate(rot, x0 + i, y0 + j, coded_w, coded_h, &cx, &cy);
            const T* lrow = (const T*)(L + (long long)cy * pitch);
            const T* crow = (const T*)(C + (long long)(cy >> 1) * pitch);
            float yv = (float)(lrow[cx] >> shift);
            float uv = (float)(crow[(cx >> 1) * 2] >> shift);
            float vv = (float)(crow[(cx >> 1) * 2 + 1] >> shift);
            float w = wy * wx;
            for (int c = 0; c < 3; ++c)
                acc[c] += w * gd_clamp255(m.m[4 * c] * yv + m.m[4 * c + 1] * uv + m.m[4 * c + 2] * vv + m.m[4 * c + 3]);
        }
    }
    long long plane = (long long)out_w * out_h, idx = (long long)oy * out_w + ox;
    for (int c = 0; c < 3; ++c) {
        float v = gd_clamp255(acc[c]) * r.scale[c] + r.offset[c];  // bicubic overshoots; RGB stays in range
        long long at = planar ? c * plane + idx : 3 * idx + c;
        if (out_float)
            ((float*)dst)[f * dst_frame_stride + at] = v;
        else
            ((unsigned char*)dst)[f * dst_frame_stride + at] = gd_to_u8(v);
    }
}

// dst_frame_stride is in output elements (bytes for uint8, floats for float32).
#define GD_RESAMPLE_ARGS                                                                                         \
    const unsigned char *__restrict__ luma, const unsigned char *__restrict__ chroma, long long src_frame_stride, \
        int pitch, int coded_w, int coded_h, void *__restrict__ dst, long long dst_frame_stride, int out_w,       \
        int out_h, int planar, int out_float, int rot, const int *x_start, const float *x_w, int x_taps,          \
        const int *y_start, const float *y_w, int y_taps, float s0, float s1, float s2, float o0, float o1,       \
        float o2, float m0, float m1, float m2, float m3, float m4, float m5, float m6, float m7, float m8,        \
        float m9, float m10, float m11

extern "C" __global__ void yuv420_8_resample(GD_RESAMPLE_ARGS) {
    const Mat34 m = {{m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11}};
    const Resample r = {x_start, x_w, x_taps, y_start, y_w, y_taps, {s0, s1, s2}, {o0, o1, o2}};
    gd_resample<unsigned char>(luma, chroma, src_frame_stride, pitch, coded_w, coded_h, dst, dst_frame_stride, out_w,
                               out_h, planar, out_float, rot, r, m, 0);
}

extern "C" __global__ void yuv420_16_resample(GD_RESAMPLE_ARGS, int shift) {
    const Mat34 m = {{m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11}};
    const Resample r = {x_start, x_w, x_taps, y_start, y_w, y_taps, {s0, s1, s2}, {o0, o1, o2}};
    gd_resample<unsigned short>(luma, chroma, src_frame_stride, pitch, coded_w, coded_h, dst, dst_frame_stride, out_w,
                                out_h, planar, out_float, rot, r, m, shift);
}
