"""Install the kit as flat modules plus console scripts: `pip install .`"""
from setuptools import setup

MODULES = ["compat", "settings", "ops", "downloads", "cifar10", "mnist", "batches", "graph", "checkpoints", "runlogs",
           "runstate", "evaluation", "trainer", "report", "references", "runfolders", "matching", "compare",
           "distributed", "ResNeXt", "fused", "SE_ResNeXt", "Densenet", "ResNet", "flops",
           "netinfo", "paperside", "diagrams", "cards", "graphview"]

setup(
    name="tf1-residual-kit",
    version="0.1.0",
    description="TensorFlow 1.x graph-mode reproductions of ResNeXt, SE-ResNeXt, DenseNet and ResNet on CIFAR/MNIST",
    py_modules=MODULES,
    package_data={"": ["references.csv"]},
    data_files=[("share/tf1-residual-kit", ["references.csv"])],
    python_requires=">=3.6",
    install_requires=["numpy", "six", "tqdm", "Pillow", "matplotlib"],  # TensorFlow itself: see requirements/
    extras_require={"tf1": ["tensorflow==1.15.5", "protobuf==3.20.3", "tflearn==0.5.0", "h5py==2.10.0"]},
    entry_points={"console_scripts": [
        "kit-resnext=ResNeXt:main",
        "kit-se-resnext=SE_ResNeXt:main",
        "kit-densenet=Densenet:main",
        "kit-resnet=ResNet:main",
        "kit-compare=compare:main",
    ]},
)
