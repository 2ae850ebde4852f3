"""setuptools glue: builds the pagedkv._pagedkv extension with CMake and packs it.

The CMake build tree is build/pip (reused between installs, so a second install only relinks);
PAGEDKV_PIP_BUILD_DIR overrides it, PAGEDKV_PIP_CMAKE_ARGS adds options (e.g.
"-DPAGEDKV_CUDA=AUTO" to compile the CUDA kernels; the default is a CPU-only build), and
PAGEDKV_JOBS sets the build parallelism. Metadata lives in pyproject.toml.
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = pathlib.Path(os.environ.get("PAGEDKV_PIP_BUILD_DIR", ROOT / "build" / "pip"))
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "-DCMAKE_BUILD_TYPE=Release",
            "-DPAGEDKV_BUILD_PYTHON=ON",
            "-DPAGEDKV_BUILD_TESTS=OFF",
            "-DPAGEDKV_BUILD_BENCHMARKS=OFF",
            "-DPAGEDKV_CUDA=OFF",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ] + shlex.split(os.environ.get("PAGEDKV_PIP_CMAKE_ARGS", ""))
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir)] + generator + args,
                       check=True)
        jobs = os.environ.get("PAGEDKV_JOBS", str(os.cpu_count() or 1))
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "pagedkv_python",
                        "--parallel", jobs], check=True)
        built = sorted((build_dir / "python" / "pagedkv").glob("_pagedkv*.so"))
        if not built:
            raise RuntimeError(f"CMake built no _pagedkv*.so under {build_dir}/python/pagedkv")
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[-1], dest)


setup(ext_modules=[CMakeExtension("pagedkv._pagedkv")], cmdclass={"build_ext": CMakeBuild})
