// Host launcher for kernels/yuv420_to_rgb.cu (tests only): loops over the grid like the GPU would.
#include "cuda_host_shim.h"
#include "yuv420_to_rgb.cu"

template <typename F>
static void launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, F body) {
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, 1};
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned byi = 0; byi < gy; ++byi)
            for (unsigned bxi = 0; bxi < gx; ++bxi)
                for (unsigned ty = 0; ty < by; ++ty)
                    for (unsigned tx = 0; tx < bx; ++tx) {
                        blockIdx = {bxi, byi, z};
                        threadIdx = {tx, ty, 0};
                        body();
                    }
}

extern "C" void run_yuv420_to_rgb(int bits, const unsigned char* luma, const unsigned char* chroma,
                                  long long src_frame_stride, int pitch, int width, int height,
                                  unsigned char* dst, long long dst_frame_stride, int planar,
                                  const float* m12, int frames, int shift) {
    const float* m = m12;
    const unsigned bx = 32, by = 8;
    unsigned gx = (width + bx - 1) / bx, gy = (height + by - 1) / by;
    if (bits == 8)
        launch(gx, gy, frames, bx, by, [&] {
            yuv420_8_to_rgb(luma, chroma, src_frame_stride, pitch, width, height, dst, dst_frame_stride, planar, m[0],
                            m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11]);
        });
    else
        launch(gx, gy, frames, bx, by, [&] {
            yuv420_16_to_rgb(luma, chroma, src_frame_stride, pitch, width, height, dst, dst_frame_stride, planar,
                             m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], shift);
        });
}

extern "C" void run_yuv420_resample(int bits, const unsigned char* luma, const unsigned char* chroma,
                                    long long src_frame_stride, int pitch, int coded_w, int coded_h, void* dst,
                                    long long dst_frame_stride, int out_w, int out_h, int planar, int out_float,
                                    int rot, const int* xs, const float* xw, int xt, const int* ys, const float* yw,
                                    int yt, const float* so6, const float* m12, int frames, int shift) {
    const float* m = m12;
    const float* s = so6;
    const unsigned bx = 16, by = 16;
    unsigned gx = (out_w + bx - 1) / bx, gy = (out_h + by - 1) / by;
    if (bits == 8)
        launch(gx, gy, frames, bx, by, [&] {
            yuv420_8_resample(luma, chroma, src_frame_stride, pitch, coded_w, coded_h, dst, dst_frame_stride, out_w,
                              out_h, planar, out_float, rot, xs, xw, xt, ys, yw, yt, s[0], s[1], s[2], s[3], s[4], s[5],
                              m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11]);
        });
    else
        launch(gx, gy, frames, bx, by, [&] {
            yuv420_16_resample(luma, chroma, src_frame_stride, pitch, coded_w, coded_h, dst, dst_frame_stride, out_w,
                               out_h, planar, out_float, rot, xs, xw, xt, ys, yw, yt, s[0], s[1], s[2], s[3], s[4],
                               s[5], m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], shift);
        });
}
