import os

# Quiet TensorFlow's C++ logging and let gymnasium render without a display.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

# Importing trpo_viz (no TensorFlow yet) makes the session's first `import tensorflow`,
# in whichever test module, load without TensorFlow's native start-up notices.
import trpo_viz  # noqa: E402, F401
