// The source of wsbridge_test_pch (tests/CMakeLists.txt): the target exists to build the test
// executables' shared precompiled header, and CMake needs a source to attach it to.
