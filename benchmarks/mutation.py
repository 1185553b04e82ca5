"""Mutation testing of the modules that decide which frame, which time and which colour (issue 11), with mutmut.

For each module: a scratch copy of the repository (``git archive HEAD``), mutmut configured to mutate that module
only and to run the test files that exercise it, then mutmut's verdict per mutant. Run by hand, not in CI (minutes
to hours on 2 cores):

    python benchmarks/mutation.py                       # every module below
    python benchmarks/mutation.py _timeline _color      # some of them
    python benchmarks/mutation.py --recheck _planner    # after new tests: retest survivors and changed functions
    # writes benchmarks/results/mutation.{json,md}; merges with modules measured before

Setup notes, learnt the hard way: the scratch ``mutants/`` folder must exist before mutmut starts and be first on
``PYTHONPATH`` (else the editable install of this checkout is imported and no test reaches a mutant), and workers
are forked from a fork server that has not imported torch or FFmpeg (``process_isolation = "forkserver"``, warmup
``none``): forking mutmut's own process after the tests ran crashes the children.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, save, tree_at

ROOT = Path(__file__).resolve().parent.parent
# module -> the tests that exercise it
MODULES = {
    "_timeline": ["tests/test_timeline.py", "tests/test_index.py", "tests/test_edge_streams.py"],
    "_index": [
        "tests/test_index.py",
        "tests/test_timeline.py",
        "tests/test_edge_streams.py",
        "tests/test_raw_streams.py",
        "tests/test_stream_leads.py",
    ],
    # color_spec decides the GPU kernel's matrix: the NVDEC tests (fake + host-run kernel) exercise it
    "_color": ["tests/test_kernels.py", "tests/test_metadata_sources.py", "tests/test_nvdec.py"],
    "samplers": ["tests/test_samplers_vs_torchcodec.py", "tests/test_samplers.py"],
    "_source": ["tests/test_source.py", "tests/test_metadata_sources.py"],
    "_backends/_swscale": [
        "tests/test_swscale.py",
        "tests/test_rgb_scaler.py",
        "tests/test_frame_sizes.py",
        "tests/test_edge_streams.py",
        "tests/test_transforms.py",
    ],
    "_planner": [
        "tests/test_planner.py",
        "tests/test_access.py",
        "tests/test_timeline.py",
        "tests/test_nvdec.py",
        "tests/test_transforms.py",
        "tests/test_approximate_chunks.py",
    ],
    "_targets": [
        "tests/test_time_targets.py",
        "tests/test_exact_targets.py",
        "tests/test_planner.py",
        "tests/test_access.py",
        "tests/test_timeline.py",
        "tests/test_nvdec.py",
    ],
    # convert_shaped (the fused transforms kernel) is reached only by the transforms tests' NVDEC-fake cases
    "_backends/_nvdec": ["tests/test_nvdec.py", "tests/test_nvc_conformance.py", "tests/test_transforms.py"],
    "_backends/_nvdec_cache": ["tests/test_nvdec.py", "tests/test_nvc_conformance.py", "tests/test_backend_parts.py"],
    "_backends/_sequenced": ["tests/test_raw_streams.py", "tests/test_nvdec.py", "tests/test_backend_parts.py"],
    # the kernels' launcher: its arguments, grid, device and stream over a host-run fake CuPy
    "_backends/_kernels": [
        "tests/test_kernel_launcher.py",
        "tests/test_kernels.py",
        "tests/test_resample_kernel.py",
        "tests/test_nvdec.py",
    ],
    "_backends/_nvc": ["tests/test_nvdec.py", "tests/test_nvc_conformance.py", "tests/test_nvc_loading.py"],
    "_backends/_cpu": [
        "tests/test_cpu_backend.py",
        "tests/test_edge_streams.py",
        "tests/test_frame_sizes.py",
        "tests/test_transforms.py",
    ],
    # the decoder's index/time mapping: the seek modes whole, and the VideoDecoder methods in FUNCTIONS
    "_seek_mode": [
        "tests/test_seek_mode.py",
        "tests/test_time_mapping.py",
        "tests/test_access.py",
        "tests/test_timeline.py",
        "tests/test_metadata_sources.py",
        "tests/test_edge_streams.py",
        "tests/test_errors.py",
        "tests/test_planner.py",
    ],
    "_decoder": [
        "tests/test_seek_mode.py",
        "tests/test_time_mapping.py",
        "tests/test_access.py",
        "tests/test_timeline.py",
        "tests/test_errors.py",
        "tests/test_planner.py",
    ],
}
# Modules mutated only in some functions (the rest of the module is not decision-making): method names.
FUNCTIONS = {
    "_decoder": [
        "_normalize_indices",
        "_check_times",
        "_frames_at_indices",
        "_frames_at_times",
        "_frames_in_range",
        "get_frames_played_in_range",
        "_resampled",
        "get_all_frames",
    ],
}
# Survivors judged equivalent (no input can tell them from the original), with the reason; checked by hand.
EQUIVALENT = {
    "_backends/_cpu": {
        "xǁCpuBackendǁ_reformat__mutmut_6": "PyAV's reformatter reads the frame's own range when given None "
        "(checked on a yuv420p VP9 stream tagged full range: identical output)",
        "xǁCpuBackendǁ_reformat__mutmut_10": "the same (the argument left out defaults to None)",
        "xǁCpuBackendǁreset__mutmut_11": "a wrong cached skip mode after a fresh context only makes the next decode "
        "set skip_frame again (a fresh context starts at DEFAULT)",
        "xǁCpuBackendǁreset__mutmut_12": "the same for 'default' (FFmpeg's option names are case-sensitive, but the "
        "cached name is only compared with ours)",
        "xǁCpuBackendǁreset__mutmut_13": "None for False: only tested for truth",
        "xǁCpuBackendǁreset__mutmut_15": "the same",
        "xǁCpuBackendǁ__init____mutmut_21": "None for False: only tested for truth",
        "xǁCpuBackendǁ__init____mutmut_23": "the same",
        **{
            f"xǁCpuBackendǁ__init____mutmut_{k}": "a wrong initial cached skip mode only makes the first decode set "
            "skip_frame (a new context starts at DEFAULT)"
            for k in (28, 29, 30)
        },
        "xǁCpuBackendǁdecode__mutmut_13": "a forgotten skip mode only makes the next decode set skip_frame again",
        "xǁCpuBackendǁset_threads__mutmut_8": "reporting a change that is none only makes the decoder's single-thread "
        "retry after lost frames run once more with the same threads (same frames, same error)",
    },
    "_planner": {
        "xǁPlannerǁ_finish_stream__mutmut_7": "j <= n: at j == n the last frame is kept but no target is left to emit "
        "it for (one conversion more on NVDEC, none on the CPU)",
        "xǁPlannerǁ_finish_stream__mutmut_23": "the same for the drained tail",
        "xǁPlannerǁ_repeat_shown_at__mutmut_17": "np.array of one Python int is int64 anyway",
        "xǁPlannerǁ_repeat_shown_at__mutmut_19": "the same",
        "xǁPlannerǁ_repeat_shown_at__mutmut_25": "called only when the sequence took nothing, so j == 0: slot 0 is "
        "written twice with the same frame",
        "xǁPlannerǁ_repeat_shown_at__mutmut_27": "j == 0 there: emit(-1) writes the last slot, which k == count - 1 "
        "writes again with the same frame",
        "xǁPlannerǁrun_sequence__mutmut_67": "k -= 1: -k % step == 0 exactly when k % step == 0, the same frames",
        "xǁPlannerǁrun__mutmut_40": "after the restart the packets start at the first packet, so nothing_after_seek "
        "never holds again: a fifth conversion of 'eof' into an overshoot cannot happen",
        "xǁPlannerǁ_outputs__mutmut_37": "the keyframe a sequence's retry records is read only by run(), which starts "
        "afresh (invalidate) after any sequence",
        **{
            f"xǁPlannerǁ{f}__mutmut_{k}": "TimeTargets.must_seek reads the target and the nominal duration only where "
            "key_of is None, and production never builds TimeTargets without it (approx_key_locator always gives a "
            "function; ExactTargets ignores both)"
            for f, k in (("_must_seek", 3), ("_must_seek", 4), ("_position_for", 28), ("_feed_toward", 64))
        },
        "xǁPlannerǁrun_sequence__mutmut_71": "j <= count with j == 0 differs only for count == 0, and empty requests "
        "return before planning",
        "xǁPlannerǁ_outputs__mutmut_3": "range(6): attempt 4 always returns (it never breaks, since attempt < 4 is "
        "false), so a sixth attempt never starts",
        "xǁPlannerǁ_outputs__mutmut_20": "a seek landing exactly at the target counted as an overshoot: seeks again "
        "from further back, the same frames (efficiency only)",
        "xǁPlannerǁ_outputs__mutmut_24": "None for False: only tested for truth",
        "xǁPlannerǁ_outputs__mutmut_30": "-(2 << 62): Python ints, still below every pts",
        "xǁPlannerǁ_outputs__mutmut_31": "-(1 << 63): the same",
        "xǁPlannerǁ_outputs__mutmut_35": "attempt == 5 never holds: at attempt 4 the loop seeks once more and ends, "
        "yielding the same (no) frames",
        **{
            f"xǁPlannerǁ_feed_toward__mutmut_{k}": "another word for a 'done' outcome: run tells only 'eof' and "
            "'overshoot' apart, every other outcome reads the same"
            for k in (54, 59, 60, 73, 78, 79)
        },
        **{
            f"xǁPlannerǁ_feed_toward__mutmut_{k}": "no last frame in a 'done' or 'overshoot' result: run reads it "
            "only after 'eof'"
            for k in (36, 55, 74)
        },
        "xǁPlannerǁ_feed_toward__mutmut_42": "None for False: first_after_seek is only tested for truth (also as "
        "nothing_after_seek)",
    },
    "_targets": {
        "xǁTimeTargetsǁwanted__mutmut_24": "np.searchsorted's side defaults to 'left': the same call",
        "xǁExactTargetsǁopen_at__mutmut_7": "the initial value of first: the loop, which runs at least once, sets it",
        "xǁExactTargetsǁopen_at__mutmut_8": "the initial value of packets: the same",
        "xǁExactTargetsǁopen_at__mutmut_49": "after a restart, leaving the first packet in the iterator instead of "
        "taking it out: chain(None, packets) yields the same packets",
        "xǁExactTargetsǁopen_at__mutmut_50": "the same (the numbering moved by one at 157226f)",
        "xǁExactTargetsǁwanted__mutmut_3": "differs only for no targets, and the planner never runs an empty request "
        "(empty requests return before planning)",
        "xǁExactTargetsǁwanted__mutmut_8": "the same (no targets)",
        "xǁExactTargetsǁwanted__mutmut_15": "pts == last: the last target is requested anyway (and no targets: never)",
        "x__runs__mutmut_10": "/ instead of // on a span that is never negative (the keyframe is at or before the "
        "target): the same cost estimate, up to float rounding above 2**53",
    },
    "_backends/_kernels": {
        "xǁYuv420ToRgbǁ_compile__mutmut_2": "the label in the compiled-module cache's key: any constant does",
        "xǁYuv420ToRgbǁ_compile__mutmut_3": "the same",
        "xǁYuv420ToRgbǁ__call____mutmut_2": "the default frame strides: with one frame (the default) only frame 0 is "
        "read and written, at offset 0 whatever the stride; callers of several frames pass both strides",
        "xǁYuv420ToRgbǁ__call____mutmut_3": "the same",
        "xǁYuv420ToRgbǁresample__mutmut_2": "the same",
        "xǁYuv420ToRgbǁresample__mutmut_3": "the same",
        "xǁYuv420ToRgbǁ__call____mutmut_34": "planar as 2 instead of 1: the kernel tests it for truth",
        "xǁYuv420ToRgbǁresample__mutmut_32": "the same",
        "xǁYuv420ToRgbǁresample__mutmut_37": "out_float as 2 instead of 1: the same",
    },
    "_backends/_nvdec_cache": {
        "x_default_cache_size__mutmut_8": "-2 instead of -1 for a value that is not a number: both below 0, the same "
        "warning and default",
    },
    "_backends/_sequenced": {
        "xǁSequencedFramesǁdecode__mutmut_1": "the default of wanted: the wrapper decodes every picture whatever it is",
    },
    "_timeline": {
        "x_presentation_ranks__mutmut_5": "segment ids as float64 zeros: only compared, summed and sorted",
        "x_presentation_ranks__mutmut_7": "the same (np.zeros defaults to float64)",
        "x_presentation_ranks__mutmut_8": "n >= 1: for one packet the junction scan is over empty arrays",
        "x_presentation_ranks__mutmut_30": "np.arange defaults to int64 on 64-bit Linux",
        "x_presentation_ranks__mutmut_32": "the same",
        "x_played_at__mutmut_22": "np.full with the int fill -1 is int64 anyway",
        "x_played_at__mutmut_25": "the same",
        "x_played_at__mutmut_28": "-2 instead of -1 as the 'not yet answered' mark: only tested with < 0",
        "x_played_at__mutmut_35": "t > first pts instead of >=: at a segment's first pts the gap rule picks the same "
        "frame (the last frame starting at or before t), ties aside, since no earlier "
        "segment plays there",
        "x_played_at__mutmut_59": "numpy reads only the first letter of kind ('S' = stable)",
        "x_played_at__mutmut_71": "searchsorted side in the gap rule: t never equals a frame's pts there (that "
        "frame's own segment plays at its pts)",
        "xǁPacketTimelineǁbuild__mutmut_12": "zip(strict=...) only matters for unequal lengths, which the index "
        "never produces (one value per keyframe on both sides)",
        "xǁPacketTimelineǁbuild__mutmut_15": "the same",
        "xǁPacketTimelineǁbuild__mutmut_16": "the same",
    },
    "samplers": {
        **{
            f"x_clips_at_regular_indices__mutmut_{k}": "the kind is only compared with 'random': any other value "
            "samples regularly"
            for k in (7, 24, 25)
        },
        "x_clips_at_regular_timestamps__mutmut_4": "the same, for the time sampler",
        "x__pad__mutmut_16": "'wrap' repeats the clip one time more before cutting it to the wanted length: the "
        "same frames",
    },
    "_source": {
        "xǁSourceǁopen_reader__mutmut_13": "seek(io.SEEK_SET) is seek(0): SEEK_SET is 0 and the default whence",
        "xǁSourceǁopen_reader__mutmut_14": "seek(0, ) is seek(0, SEEK_SET): the default whence",
        "x_make_source__mutmut_108": "the same call, in make_source",
        "x_make_source__mutmut_109": "the same call, in make_source",
        "x__tensor_buffer__mutmut_16": "cast('b'): a signed-byte view of the same memory: len, nbytes and tobytes() "
        "are those of cast('B'), and nothing else reads it",
        "x_make_source__mutmut_27": "the same, for memoryview sources",
        "x_make_source__mutmut_23": "casting bytes/bytearray views too: they already are 1-D unsigned-byte views",
    },
    "_index": {
        "xǁFrameIndexǁframes_played_in__mutmut_10": "np.arange of two Python ints is int64 without a dtype",
        "xǁFrameIndexǁframes_played_in__mutmut_13": "the same",
        "xǁFrameIndexǁframes_played_in__mutmut_20": "side='left' is searchsorted's default",
        "xǁFrameIndexǁpacket_timeline__mutmut_1": "plan_key_pts and packet_pos come from one timeline dict: both "
        "set or neither",
        "x_to_seconds__mutmut_3": "astype(None) is astype(float64)",
        "x__scan_packets__mutmut_8": "raw_dur None instead of 0: read only as `raw_dur or ...` for raw streams",
        **{
            f"x__scan_packets__mutmut_{k}": "np.array of a list of Python ints (bools) is int64 (bool) without a "
            "dtype; an empty list goes no further (no packets is a MediaError)"
            for k in (70, 72, 74, 76, 78, 80, 82, 84, 86, 88)
        },
        "x__from_mp4_tables__mutmut_7": "a track with no samples passes this guard, but its stts runs cannot sum to "
        "0 samples (or it has none): None just after, as before",
        **{
            f"x__from_mp4_tables__mutmut_{k}": "float64 holds every decode time and byte offset below 2**53 exactly, "
            "and they go back to int64"
            for k in (14, 16, 24, 26, 29, 31)
        },
        "x__from_mp4_tables__mutmut_46": "n >= 1: for one sample both sides of the comparison are empty",
        "x__from_mp4_tables__mutmut_47": "n > 2: for two samples FFmpeg's one decode-time step is the stts's own "
        "(its index is built from that table; edit lists change the entry count, "
        "refused before)",
        "x__from_mp4_tables__mutmut_104": "durations as float64: they go back to int64 in the index",
        "x__from_packets__mutmut_5": "np.arange(n) is int64 without a dtype",
        "x__from_packets__mutmut_7": "the same",
        "x__from_packets__mutmut_57": "a step of 2 where the median duration is 1: any positive step gives the same "
        "frames, only the private timeline's scale changes (packets are stamped with the same step)",
        "x__from_packets__mutmut_74": "float segment starts: segments_of and the index file take them as ints",
        "x__from_packets__mutmut_80": "prepend any value but segment 0's id (0): the first frame starts a segment",
        "x__from_packets__mutmut_81": "the same",
        "x__from_packets__mutmut_94": "a stream not starting on a keyframe gets a first 'keyframe' position of 1 "
        "instead of 0: searchsorted sends packet 0 to -1, which the clamp in _start_keys turns back to 0, and every "
        "later packet to the same keyframe as before",
        **{
            f"x__from_packets__mutmut_{k}": "the arrays are int64 already: no dtype keeps int64"
            for k in (132, 134, 136, 138, 140, 142, 144, 146)
        },
        "x_median_int__mutmut_22": "partitioning at k-2 and k leaves one position between two sorted ones, so k-1 "
        "holds its sorted value too (n = 2: k-2 is -1, the last position)",
        "x__filled_durations__mutmut_14": "when every positive gap is 1, their median is 1 too",
        "x_build_exact_index__mutmut_50": "every per-packet array has the same length",
        "x__without_undecodable_lead__mutmut_4": "a one-packet stream has no lead: its packet is its first keyframe "
        "(or it has none and returns on the other condition)",
        "x__without_undecodable_lead__mutmut_64": "np.fromiter without a dtype gives float64, which holds every pts "
        "below 2**53 exactly, so np.isin matches the same packets",
        "x__without_undecodable_lead__mutmut_68": "count only sizes np.fromiter's buffer ahead",
        "x__without_undecodable_lead__mutmut_72": "at == first_key adds nothing: the first keyframe is never in the "
        "lead (its pts is not below its own), and the count only reaches a debug message",
        "x__check_against_demux__mutmut_1": "the guard compares one more packet: tables that agree on 7 agree on 6",
        "x__start_keys__mutmut_13": "a ninth step back is never needed: no stream nests leading pictures 8 deep",
        "x__start_keys__mutmut_16": "at start 0 the step back gives -1, which np.maximum(start, 0) turns back to 0",
    },
    "_backends/_swscale": {
        "x__load__mutmut_42": "without argtypes ctypes passes bytes as char* anyway",
        "x__load__mutmut_53": "without argtypes ctypes passes a Python int as a C int anyway",
        "x__load__mutmut_54": "the return value of sws_setColorspaceDetails is not used",
        **{
            f"x__load__mutmut_{k}": "ctypes.POINTER(None) is c_void_p: the same address is passed"
            for k in (56, 57, 60, 61, 62, 63)
        },
        "xǁDirectConverterǁ__init____mutmut_5": "'' and None both differ from every context key: the first frame "
        "builds the context either way",
        **{
            f"xǁDirectConverterǁ__init____mutmut_{k}": "the scratch shape is read only once a scratch frame exists"
            for k in (8, 9)
        },
        "xǁDirectConverterǁclose__mutmut_3": "'' and None both differ from every context key",
        **{
            f"xǁScratchFrameǁ__init____mutmut_{k}": "the key is compared only once a buffer exists, and the first "
            "call allocates one whatever the key says"
            for k in (2, 3, 4, 5)
        },
        "xǁScratchFrameǁrows__mutmut_19": "aligned_empty's default alignment is 64, _ALIGN",
        **{
            f"x__ptrs__mutmut_{k}": "a ctypes array's items not given are zero (NULL), the values written out"
            for k in (3, 4, 5, 13, 14, 15)
        },
        **{f"x__ptrs__mutmut_{k}": "a fifth item after the four that swscale reads" for k in (7, 17)},
        **{
            f"x__ptrs__mutmut_{k}": "packed RGB has one plane: the strides of planes 1-3 are never read"
            for k in (18, 19, 20)
        },
        **{
            f"xǁDirectConverterǁ_pix_fmt__mutmut_{k}": "the cache is bypassed: av_get_pix_fmt answers again, "
            "the same value"
            for k in (1, 2, 7)
        },
        "xǁDirectConverterǁ_context__mutmut_60": "for an RGB destination sws_setColorspaceDetails sets dstRange to 0 "
        "whatever it is given (libswscale: if (!isYUV(dstFormat) && !isGray(dstFormat)) dstRange = 0)",
        "xǁDirectConverterǁ_context__mutmut_68": "the context is set up again at every frame: the same tables, "
        "more work",
        "xǁDirectConverterǁ_scratch_rows__mutmut_7": "only the tests called it, at the default sample size; the "
        "method is gone since (the tests read the scratch frame's rows directly)",
        **{
            f"xǁDirectConverterǁ_scale__mutmut_{k}": "planes past the frame's own are never read: a missing item is "
            "zero anyway, a fifth is past the four read, a stride for a plane that does not exist is not used"
            for k in (20, 22, 29, 31, 34)
        },
        "xǁRgbScalerǁscale__mutmut_15": "a row stride of 1 with pixels 3 bytes apart (overlapping rows) exists only "
        "in a hand-built as_strided view",
    },
    "_seek_mode": {
        **{
            f"x_positions_of__mutmut_{k}": "an unstable sort only reorders the slots of one frame among themselves; "
            "every slot of a frame receives the same frame"
            for k in (3, 5)
        },
        "x_positions_of__mutmut_7": "NumPy reads a sort kind by its first letter, case-insensitively: 'STABLE' is "
        "'stable'",
        "x_positions_of__mutmut_12": "np.unique's inverse uses every label 0..n-1, so bincount has length n anyway",
        **{
            f"x_approx_key_locator__mutmut_{k}": "the cache key of the index entries never matches: the entries are "
            "fetched again at every call, with the same values"
            for k in (2, 3, 4, 7, 8, 9)
        },
        **{
            f"x_approx_key_locator__mutmut_{k}": "search_timestamp's defaults are backward=True, any_frame=False, "
            "and None is false"
            for k in (46, 48, 49)
        },
        **{
            f"x_approx_key_locator__mutmut_{k}": "search_timestamp returns -1 or an ordinal >= 0: k > 0 and k >= 1 "
            "differ from k >= 0 only at k = 0, which the fallback also answers 0"
            for k in (56, 57)
        },
        **{
            f"x_approx_key_locator__mutmut_{k}": "for keyframe 0 the start is entry 0 + shift whenever entry 0 is at "
            "or before the start, and otherwise both lie at or before keyframe 0, where a backward seek lands on it"
            for k in (63, 64)
        },
        "x_approx_key_locator__mutmut_65": "key_ts is only given ordinals key_of returned, all below len(entries)",
        **{
            f"xǁExactModeǁ__post_init____mutmut_{k}": "the header rate is used only when the index spans no time, "
            "and every indexed frame lasts at least one tick"
            for k in (9, 10, 11, 31, 33)
        },
        **{
            f"xǁExactModeǁnominal_duration__mutmut_{k}": "an exact index is never empty (no frames is a MediaError)"
            for k in (3, 7)
        },
        **{
            f"xǁApproximateModeǁindices_played_in__mutmut_{k}": "np.arange of Python ints is int64 on 64-bit Linux"
            for k in (17, 20)
        },
    },
    "_backends/_nvdec": {
        "xǁNvdecBackendǁflush__mutmut_4": "None for False: the flag is only tested for truth",
    },
    "_decoder": {
        "xǁVideoDecoderǁ_frames_in_range__mutmut_6": "step >= 0: every caller passes a positive step here (slices "
        "with negative steps take the index path before, step 0 is rejected first)",
        **{
            f"xǁVideoDecoderǁ_frames_in_range__mutmut_{k}": "np.arange/np.array of Python ints is int64 without a dtype"
            for k in (14, 18, 31, 33)
        },
        "xǁVideoDecoderǁ_frames_in_range__mutmut_21": "the sequence path's request is run by its own closure: its "
        "targets are never read (assemble reads the slots, labels, count and times)",
        **{f"xǁVideoDecoderǁ_resampled__mutmut_{k}": "np.arange(count) is int64 without a dtype" for k in (14, 16)},
        **{
            f"xǁVideoDecoderǁ_resampled__mutmut_{k}": "the argument name of a message never shown: the resampled "
            "times lie inside [start, stop), which was checked (the last is at most stop - 0.5/fps)"
            for k in (19, 22, 23)
        },
    },
}
# How far each module's last measurement got, and against which tests (a run that stopped early, or code and tests
# that changed after its snapshot): printed under the table.
NOTES = {
    "_index": "Full rerun at d8d00f0 (2026-12-04 05:49-06:43, two workers, paused a few times for benchmarks): "
    "all 41 survivors examined on 2026-12-04: 29 are equivalent (the reasons below; the numbering moved since the "
    "run before, so its verdicts were matched to the new numbers by their diffs). Tests added after the run "
    "(tests/test_stream_leads.py: a lead packet that fails to decode, a 57-packet lead, a CRA whose leading pictures "
    "end its GOP, a CRA after a mid-GOP lead, the probe's packet count; test_index.py: durations whose every gap is "
    "1) kill 8 of the other 12, checked by hand by applying each to a scratch copy: _filled_durations 12 and "
    "_without_undecodable_lead 11, 17, 45-48 and 54 (rows below may still say not killed). Not killed: "
    "_without_undecodable_lead 1 (a stream with no keyframe flag at all is probed too), 10 and 18 (a longer first "
    "GOP: only a packet after it whose pts is below the first keyframe's would change, and timestamps that drop "
    "below the first keyframe's are unwrapped by FFmpeg or offset by the concat demuxer in every fixture) and 52 "
    "(a one-packet smaller margin after the lead for the decoder's delay).",
    "_targets": "Full run at 89a0c3d (2026-12-04 05:15-05:48, two workers): 91.0% counted. Its survivors were in "
    "exact mode's ExactTargets (the approximate mode's, found by the run before, are killed by "
    "tests/test_time_targets.py): the fixtures' demuxers always land on the keyframe asked for, so open_at's "
    "step-back schedule and restart had no test. tests/test_exact_targets.py (added after the run) drives open_at "
    "with a fake demuxer that lands late, on a non-keyframe or nowhere, against a replay of the schedule its "
    "docstring states, and unit-tests key_of_packet, wanted, match and close_iterator; checked by hand by applying "
    "each survivor to a scratch copy, it kills all 31 non-equivalent ones (open_at 58 and 59 mutated its at_start "
    "result, which now also says True after a restart, as the Targets protocol defines it, and is asserted)."
    " Then a `--recheck` at b2c6638 (2026-12-04 09:06-09:35, two workers, after 157226f and b5098a3 "
    "changed open_at and lands_on; tests/test_exact_targets.py joined the list): 99.2% counted, as the table shows. "
    "Not killed: ExactTargets.lands_on 1 (never continuing an exact-mode sequence: a seek each time, the same "
    "frames) and ExactTargets.match 23 (a duration of 1 instead of 0 emitted for an exact-mode frame without one: "
    "no fixture in the list has such a frame).",
    "_backends/_kernels": "First run at 2959446 (2026-12-04 06:43, 84.3%); tests/test_kernel_launcher.py then got "
    "grids at sizes on and just past a block boundary, 9-bit surfaces, the device each module, kernel and stream is "
    "made on, one CuPy stream per handle, the colour matrix once per spec and where a kernel source is found; full "
    "rerun at 2d54c23 (06:58-07:05): besides the 9 equivalents only resample 12 survives (a grid one block short "
    "for outputs one column past a block), killed by a 17-wide case added after it, checked by hand.",
    "_backends/_nvdec_cache": "First run at 2959446 (2026-12-04 06:44, 80.2%); tests/test_backend_parts.py then "
    "tested the cache's bounds and counters, the size from the environment, the size buckets against brute force, "
    "CreateDecoder's arguments and reconfiguration; full rerun at 2d54c23 (07:05-07:07). Its survivor acquire_decoder "
    "36 (the size forgotten after a reconfiguration: the next reuse at that size reconfigures again) is killed by a "
    "test added after it, checked by hand. `no tests`: the fork handler, which runs only in a forked child.",
    "_backends/_sequenced": "First run at 2959446 (2026-12-04 06:45, 80.0%); tests/test_backend_parts.py then "
    "tested its numbering from 0, the wrapped backend's name and that it never lets the decoder skip a picture; full "
    "rerun at 2d54c23 (07:07): only the equivalent survives. `no tests`: close and set_threads' pass-throughs.",
    "_backends/_nvc": "First run at 2959446 (2026-12-04 06:45, 41.7%: without CUDA the loader stopped at its first "
    "line); tests/test_nvc_loading.py then drove it with CUDA reported, a fake CuPy and a stand-in PyNvVideoCodec; "
    "full rerun at 36e9415 (07:07-07:09): every mutant with a test is killed. `no tests`: TorchStreams and the decode "
    "stream (they need CUDA) and the fork handler.",
    "_planner": "Full rerun at 8d9a1b8 (2026-12-04 11:14-12:20, two workers), on the code after db88782 (the "
    "restart livelock fixed, _outputs restarting on its last try, the overshoot-schedule tests): 568 mutants, 94.3% "
    "counted; without any mutant judged equivalent it would be 90.3% (513 of 568). The equivalent verdicts are "
    "keyed by the earlier run's numbers (cb7b26b) and were not re-matched to this run's diffs for lack of time. "
    "Survivors read in this run: _feed_toward 36, 42, 54, 55, 59, 60, 73, 74, 78, 79 (the 'done' outcome's "
    "spelling and last_frame: run() reads only 'overshoot' and 'eof', and last_frame only at 'eof') keep "
    "their carried-over equivalent verdicts, which still fit these diffs; _outputs 22, 27-29, 37 and 48 (first "
    "None is false; the 'found' target only needs to lie below every pts; the keyframe a sequence's retry "
    "records is read only by run(), which starts afresh after a sequence) look equivalent, but the carried-over "
    "verdicts under those numbers describe the old loop; _feed 5-10 and _safe 4-9 (the log messages) are killed "
    "by tests in test_stream_leads.py and "
    "test_errors.py, outside this module's list (checked by hand in the session before), and _match 11 by "
    "test_stream_leads.py (checked by hand). Not killed: unclosed iterators (invalidate 1-2, _reposition 5-6, run "
    "50, _finish_stream 46), _seek 14, _position_for 17, _feed_toward 21, _note_keyframe 3 (>=: the same "
    "assignment, equivalent), _match 13, _decoded 15, _feed 4.",
    "_decoder": "Full run at 03c6f2a (2026-12-04 02:14-02:35, 89.6%), then tests for its survivors and a "
    "`--recheck` at 3c7a42d (02:37-02:50; the module had become the façade over `_session` by then, so 219 "
    "mutants). A test added after the recheck kills _check_times 6 (a time exactly at the start of a stream whose "
    "end is unknown), checked by hand. Changed after the recheck only in an import (Emit from _parallel).",
    "_backends/_nvdec": "Full run at 82fe612 (2026-12-04 03:18-04:01, two workers, paused several times for "
    "benchmarks; mutmut's limit is on CPU time, so a pause cannot turn a verdict into a "
    "timeout). Tests added after it kill flush 3 (a failing drain's words) and flush 5 (drained"
    " once per run of packets), checked by hand. convert_shaped (the fused transforms kernel) "
    "had no test in that run's list; tests/test_transforms.py reaches it and joined the list "
    "for a `--recheck` at bc2d23a (04:17-04:55), which mutmut turned into a full rerun (the "
    "tests had changed). Its survivors convert_shaped 29, 44 and 59 (the kernel's CUDA stream) "
    "are killed by a test added after it (c10a273), checked by hand. Not killed: set_threads 1 "
    "(NVDEC claiming a thread change: the session retries a run that lost frames once more, "
    "with the same result).",
    "_backends/_cpu": "Full run at 7ed9165 (2026-12-04 00:52-01:38), one worker. Counted with the kills below, the "
    "score would be 94.9% (169 of 178). Tests added after its survivors (this commit and the three before) kill, "
    "checked by "
    "hand: convert_shaped 6, 13, 18, 19, 21 and 23, _reformat 12 and 13 (the PyAV-reformatter fallback, now "
    "tested against the CLI), flush 1, 3, 4, 6 and 7 (a failing drain), convert_into 14, 16, 20 and 21 (RGB48 "
    "through the fallback), decode 17 (FFmpeg's reason in the message), close 1 (closing a decoder without a "
    "direct converter); _reformat 1 and 2 no longer "
    "exist (its unused default was removed). Not killed: __init__ 16 and 17 (HEVC's in-band parameter sets not "
    "watched: ffmpeg's concat of HEVC segments in MKV keeps only the first segment's, measured, so no fixture here "
    "changes format mid-stream in HEVC), and __init__ 18 and 22, _check_tags 1 and 3, reset 14 (a fresh decoder at "
    "every seek: slower, the same frames)."
    " Changed after the run only in _reformat's signature (its unused default removed) and docstring.",
    "samplers": "Full run from 29576b1 (2026-12-03 19:11-19:47), then a `--recheck` with the word-for-word error "
    "tests.",
    "_source": "Full run at 31cf38f (2026-12-03, 1,860 s; the time column shows 0 s because the verdicts were "
    "collected after the run was stopped between modules).",
    "_backends/_swscale": "Full rerun at 02056e8 (2026-12-04 10:15-11:00, two workers, tests/test_transforms.py in "
    "the list; the earlier runs, at eaccfea and a partial one at 0d5d11d, described older code). Its 59 survivors "
    "were examined one by one: 39 equivalent (listed below with reasons; the _load ones keep their numbers from the "
    "earlier run, checked against this run's diffs). tests/test_rgb_scaler.py, added after the run (the scaler "
    "against the ffmpeg CLI's scale filter bit for bit, RGB24 and RGB48, bilinear and bicubic, down and up; what it "
    "refuses; frames swscale cannot convert), and a test reading the scratch frame's rows at the default sample "
    "size kill, checked by hand (each diff applied to a scratch copy, tests/test_rgb_scaler.py and "
    "tests/test_swscale.py): _scale 5 and 15, convert_into 41, ScratchFrame.rows 1, RgbScaler.scale 3, 4, 5, 13, "
    "14, 16, 48, 54 and 73, RgbScaler.close 2 and 3, rgb_scaler 1 and 2 (17). Counted with them: 99.3% (435 of "
    "438 non-equivalent). Not killed: _context 20 (a new context at each change, the old one never freed), "
    "DirectConverter.close 1 and RgbScaler.close 1 (the context not freed): leaks no test measures. "
    "DirectConverter._scratch_rows, which only the tests called, was removed after the run.",
    "_seek_mode": "Full run at cd02e04 (2026-12-03 20:40, 79.3%), new tests (`test_seek_mode.py`), then a full rerun "
    "at 65c9b29 (21:33-22:09): 96.3% as listed. Tests added after that run (7cf9980 and the next commit) kill, "
    "checked by hand by applying each mutant and running `tests/test_seek_mode.py`: ExactMode.__post_init__ 21 "
    "and 34 (and 29, which drops the same argument to the same default None), ExactMode.nominal_duration 2, "
    "Header.from_facts 32, approx_key_locator 31 and 54, "
    "ApproximateMode._frame_at 5, 6, 9, 10, 15 and 16 (their rows below still say survived). Not killed: "
    "ApproximateMode.planner_targets 7 and 13 (seeking by the margin instead of the index's keyframe time, and "
    "clamping seeks at 0 instead of the header's start, cost work but give the same frames)."
    " Changed after the rerun in one line: nominal_duration calls median_int instead of np.median.",
}
VERDICTS = ("killed", "survived", "timeout", "suspicious", "no tests", "skipped", "segfault", "not checked")


def _config(module: str, tests: list[str]) -> str:
    # timeout_multiplier: mutmut's default (15, doubled: 30x a mutant's usual test time in CPU seconds) let each
    # mutant that loops forever hold a worker for minutes; 3 (6x) still leaves slow machines room.
    return f"""
[tool.mutmut]
source_paths = ["gpudecode"]
only_mutate = ["gpudecode/{module}.py"]
pytest_add_cli_args_test_selection = {json.dumps(tests)}
also_copy = ["kernels"]
pytest_add_cli_args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-q"]
process_isolation = "forkserver"
forkserver_warmup = "none"
timeout_multiplier = 3.0
"""


def _scratch(module: str, recheck: bool, refresh: bool = True) -> tuple[Path, list[str]]:
    """The scratch copy to mutate in, and (``recheck``) the mutants that survived there before.

    A recheck reuses the module's previous scratch copy with this checkout's HEAD written over it: mutmut's
    incremental run then retests the mutants of every function that changed (and collects coverage for new tests),
    keeps the verdicts of unchanged functions, and the previous survivors are retested by name against the new tests.
    """
    prefix = f"gpudecode-mutation-{module.replace('/', '-')}-"
    old = sorted(Path(tempfile.gettempdir()).glob(prefix + "*"), key=lambda d: d.stat().st_mtime)
    if not (recheck and old and (old[-1] / "mutants").is_dir()):
        work = tree_at("HEAD", prefix=prefix)
        with open(work / "pyproject.toml", "a") as f:
            f.write(_config(module, MODULES[module]))
        (work / "mutants").mkdir()
        return work, []
    work = old[-1]
    survivors = []
    for meta in (work / "mutants").rglob("*.meta"):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        survivors += [name for name, code in codes.items() if code in (0, 33)]  # survived, no tests
    if not refresh:
        return work, survivors
    fresh = tree_at("HEAD", prefix="gpudecode-mutation-head-")
    for item in fresh.iterdir():
        target = work / item.name
        if item.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(item), str(target))
    shutil.rmtree(fresh)
    with open(work / "pyproject.toml", "a") as f:
        f.write(_config(module, MODULES[module]))
    return work, survivors


def run_module(module: str, jobs: int, recheck: bool = False, collect: bool = False) -> dict[str, object]:
    """Mutate one module in a scratch copy; return mutmut's counts and the surviving mutants.

    ``collect``: run nothing, only read the verdicts of the module's last scratch copy (a run stopped early: the
    mutants it did not reach count as ``not checked``).
    """
    work, survivors = _scratch(module, recheck or collect, refresh=not collect)
    env = dict(os.environ, PYTHONPATH=str(work / "mutants"))
    mutmut = [sys.executable, "-m", "mutmut"]
    dotted = "gpudecode." + module.replace("/", ".")
    patterns = [f"{dotted}.x*ǁ{fn}__mutmut_*" for fn in FUNCTIONS.get(module, [])]
    t0 = time.monotonic()
    run = subprocess.CompletedProcess([], 0, "", "")
    if not collect:
        run = subprocess.run(
            [*mutmut, "run", "--max-children", str(jobs), *patterns], cwd=work, env=env, capture_output=True, text=True
        )
        for k in range(0, len(survivors), 50):  # retest what survived before (a bounded command line at a time)
            subprocess.run(
                [*mutmut, "run", "--max-children", str(jobs), *survivors[k : k + 50]],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
            )
    seconds = time.monotonic() - t0
    listing = subprocess.run(
        [*mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True
    ).stdout
    verdicts: dict[str, str] = {}
    for line in listing.splitlines():
        m = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if m and (not patterns or any(fnmatch.fnmatch(m.group(1), p) for p in patterns)):
            verdicts[m.group(1)] = m.group(2).strip()
    counts = {v: sum(1 for x in verdicts.values() if x == v) for v in VERDICTS}
    survivors = {}
    for name, verdict in verdicts.items():
        if verdict == "survived":
            diff = subprocess.run([*mutmut, "show", name], cwd=work, env=env, capture_output=True, text=True).stdout
            survivors[name] = "\n".join(
                ln for ln in diff.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))
            )
    return {
        "module": module,
        "tests": MODULES[module],
        "functions": FUNCTIONS.get(module, []),
        "seconds": round(seconds, 1),
        "counts": counts,
        "total": len(verdicts),
        "survivors": survivors,
        "returncode": run.returncode,
        "stderr_tail": (run.stdout + run.stderr)[-300:] if run.returncode else "",
    }


def _equivalent(r: dict) -> dict[str, str]:
    known = EQUIVALENT.get(r["module"], {})
    return {m: known[m.rsplit(".", 1)[-1]] for m in r["survivors"] if m.rsplit(".", 1)[-1] in known}


def _score(r: dict) -> str:
    """Killed share of the non-equivalent mutants with a verdict."""
    c = r["counts"]
    decided = c["killed"] + c["survived"] + c["timeout"] + c["segfault"] + c["suspicious"] - len(_equivalent(r))
    alive = c["survived"] - len(_equivalent(r))
    return f"{100 * (decided - alive) / decided:.1f}%" if decided else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", default=list(MODULES))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--recheck",
        action="store_true",
        help="reuse each module's last scratch copy: retest changed "
        "functions and the previous survivors against this checkout's HEAD",
    )
    ap.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: read the verdicts of each module's last scratch copy (a run stopped early)",
    )
    a = ap.parse_args()
    old = RESULTS / "mutation.json"
    results = json.loads(old.read_text())["modules"] if old.exists() else {}
    for module in a.modules:
        print(f"mutating {module} ...", flush=True)
        seconds_before = results.get(module, {}).get("seconds", 0) if a.collect else 0
        result = run_module(module, a.jobs, a.recheck, a.collect)
        if not a.collect and result["counts"]["not checked"] == result["total"]:
            # mutmut checked nothing: its baseline test run failed (a test that fails on the unmutated code)
            print(f"  mutmut checked no mutant; kept the earlier result. mutmut said: {result['stderr_tail']}")
            continue
        results[module] = result
        results[module]["seconds"] = results[module]["seconds"] + seconds_before
        print(f"  {results[module]['counts']} in {results[module]['seconds']} s", flush=True)
    m = machine()
    lines = [
        f"# Mutation testing (mutmut) — {m['cpu']} ({m['cores']} cores), {m['date'][:10]}",
        "",
        "Score = killed (timeouts and crashes count as killed) / non-equivalent mutants with a verdict (the "
        "equivalent ones are listed with the reason below). `no tests`: no selected test reaches the mutated "
        "function. Command: `python benchmarks/mutation.py [module ...]`.",
        "",
        "| module | mutants | killed | survived | of which equivalent | timeout | crashed | no tests | score | "
        "tests run | time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in results.items():
        c = r["counts"]
        scope = f" ({len(r['functions'])} methods: index/time mapping)" if r.get("functions") else ""
        lines.append(
            f"| `{name}`{scope} | {r['total']} | {c['killed']} | {c['survived']} | {len(_equivalent(r))} | "
            f"{c['timeout']} | "
            f"{c['segfault'] + c['suspicious']} | {c['no tests']} | {_score(r)} | "
            f"{', '.join(Path(t).name for t in r['tests'])} | {r['seconds']:.0f} s |"
        )
    notes = [f"* `{name}`: {NOTES[name]}" for name in results if name in NOTES]
    if notes:
        lines += ["", "Where a measurement stands:", "", *notes]
    lines += ["", "## Surviving mutants", ""]
    for r in results.values():
        equivalent = _equivalent(r)
        for mutant, diff in r["survivors"].items():
            why = f" — equivalent: {equivalent[mutant]}" if mutant in equivalent else " — **not killed**"
            lines += [f"* `{mutant}`{why}", "", "```diff", diff, "```", ""]
    save("mutation", {"machine": m, "modules": results}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
