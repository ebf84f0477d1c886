"""ament_python / pip install of streaming_flow_ros.

Works two ways: `colcon build` on a real ROS 2 install (data files land in share/), and
`pip install .` in a virtual environment with the ROS 2 PyPI wheels (see README).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "streaming_flow_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["assets/*.safetensors", "assets/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/robots", glob("config/robots/*.yaml")),
        (f"share/{PACKAGE}/config/controllers", glob("config/controllers/*.yaml")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
        (f"share/{PACKAGE}/config/dds", glob("config/dds/*.xml")),
    ],
    install_requires=["setuptools", "numpy", "pyyaml", "safetensors", "rosbags"],
    extras_require={"test": ["pytest", "hypothesis"]},
    zip_safe=True,
    maintainer="streaming_flow_ros developers",
    maintainer_email="dev@streaming-flow-ros.invalid",
    description="Streaming Flow Policy for ROS 2 arms",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sfp = streaming_flow_ros.cli:main",
            "policy_node = streaming_flow_ros.ros.node:main",
        ],
    },
)
