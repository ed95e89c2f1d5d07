# Run by ctest (a TEST_INCLUDE_FILES script): registers one ctest test per GoogleTest test suite of
# one test program, `<layer>:<Suite>` running `--gtest_filter=<Suite>.*`.
#
# Why suites and not single tests (gtest_discover_tests): every test process pays LibTorch's static
# initialisation, 0.6-0.8 s on a 2-core machine: over 331 tests, per-suite processes (94) took the
# whole suite from 1,240 to 997 s. ctest -R and ctest's report work at the suite level; the output
# names the failing test.
#
# Inputs (set by the generated include file): GM_EXE, the test program; GM_LAYER, its layer name;
# GM_DIR, the working directory; GM_OUT, the cached list of add_test calls, rebuilt when the
# program or this script is newer.
if(NOT EXISTS "${GM_EXE}")
  add_test("${GM_LAYER}:NOT_BUILT" "${GM_EXE}")
  return()
endif()
if(NOT EXISTS "${GM_OUT}" OR NOT "${GM_OUT}" IS_NEWER_THAN "${GM_EXE}" OR
   NOT "${GM_OUT}" IS_NEWER_THAN "${CMAKE_CURRENT_LIST_FILE}")
  execute_process(COMMAND "${GM_EXE}" --gtest_list_tests
                  OUTPUT_VARIABLE listing RESULT_VARIABLE rc TIMEOUT 120)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${GM_EXE} --gtest_list_tests failed (${rc}); run it by hand to see why")
  endif()
  # Suite lines are unindented and end in '.' (optionally "  # TypeParam = ..."); test lines are
  # indented. A suite whose tests are all DISABLED_ (timings run by hand) shows as disabled.
  string(REPLACE "\n" ";" lines "${listing}")
  set(suites "")
  set(enabled "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^([^ #][^ ]*)\\.( .*)?$")
      set(suite "${CMAKE_MATCH_1}")
      list(APPEND suites "${suite}")
    elseif(line MATCHES "^  ([^ ]+)")
      set(test "${CMAKE_MATCH_1}")
      if(NOT test MATCHES "^DISABLED_" AND NOT suite MATCHES "^DISABLED_")
        list(APPEND enabled "${suite}")
      endif()
    endif()
  endforeach()
  set(content "")
  foreach(suite IN LISTS suites)
    set(name "${GM_LAYER}:${suite}")
    string(APPEND content
      "add_test([==[${name}]==] [==[${GM_EXE}]==] [==[--gtest_filter=${suite}.*]==])\n"
      "set_tests_properties([==[${name}]==] PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77 "
      "WORKING_DIRECTORY [==[${GM_DIR}]==])\n")
    list(FIND enabled "${suite}" index)  # (IN_LIST needs a policy ctest's scripts lack)
    if(index EQUAL -1)
      string(APPEND content "set_tests_properties([==[${name}]==] PROPERTIES DISABLED TRUE)\n")
    endif()
  endforeach()
  file(WRITE "${GM_OUT}" "${content}")
endif()
include("${GM_OUT}")
