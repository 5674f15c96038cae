"""Build the compiled core (analyzer._engine); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "analyzer._engine",
            sources=[
                "csrc/module.c",
                "csrc/framing.c",
                "csrc/decode.c",
                "csrc/track.c",
                "csrc/zeek.c",
                "csrc/columns.c",
                "csrc/anomaly.c",
                "csrc/merge.c",
                "csrc/bpf.c",
            ],
            depends=[
                "csrc/engine.h",
                "csrc/framing.h",
                "csrc/decode.h",
                "csrc/track.h",
                "csrc/zeek.h",
                "csrc/columns.h",
                "csrc/anomaly.h",
                "csrc/anomaly_state.h",
                "csrc/merge.h",
                "csrc/bpf.h",
            ],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
