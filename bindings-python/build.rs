fn main() {
    // PyO3's cfgs (`Py_GIL_DISABLED` among them) for src/value/{walk,build}.rs.
    pyo3_build_config::print_expected_cfgs();
    pyo3_build_config::use_pyo3_cfgs();
}
