//! placeholder: the PyO3 layer
