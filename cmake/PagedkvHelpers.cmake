# pagedkv_add_test(NAME SOURCES... [LIBS ...] [LABELS ...])
# One GoogleTest binary per header under test; each TEST becomes a CTest test (gtest_discover_tests).
include(GoogleTest)
function(pagedkv_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main
                        pagedkv_build_flags)
  # Labels are set by a file CTest includes after the discovered tests: gtest_discover_tests
  # passes PROPERTIES to set_tests_properties as separate words, which keeps only the first of
  # several labels.
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_LIST ${name}_TESTS)
  if(ARG_LABELS)
    set(labels_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake")
    file(WRITE "${labels_file}"
         "if(${name}_TESTS)\n  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS "
         "\"${ARG_LABELS}\")\nendif()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${labels_file}")
  endif()
endfunction()

# pagedkv_add_benchmark(NAME SOURCES... [LIBS ...])
# A Google Benchmark binary, plus a CTest smoke run (each benchmark once, tiny min time) so that
# every benchmark keeps building and running in CI. Timings are never asserted.
function(pagedkv_add_benchmark name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} benchmark::benchmark pagedkv_build_flags)
  if(PAGEDKV_BUILD_TESTS)
    add_test(NAME ${name}.smoke
             COMMAND ${name} --benchmark_min_time=0.001 --benchmark_format=json
                     --benchmark_out=${CMAKE_CURRENT_BINARY_DIR}/${name}.smoke.json)
    set_tests_properties(${name}.smoke PROPERTIES LABELS benchmark_smoke)
  endif()
endfunction()
