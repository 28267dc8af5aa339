# docs/run_doxygen.cmake — the docs.doxygen test: cmake -DSOURCE_DIR=... -DOUTPUT_DIR=... -P this.
#
# Runs doxygen with docs/Doxyfile from the repository root, its HTML going into OUTPUT_DIR,
# and fails when doxygen reports anything (the Doxyfile sets WARN_AS_ERROR =
# FAIL_ON_WARNINGS). Without doxygen it prints "docs.doxygen skipped: <reason>", which ctest
# reports as Skipped.
find_program(doxygen doxygen)
if(NOT doxygen)
  message("docs.doxygen skipped: doxygen is not installed (scripts/install-deps.sh installs it)")
  return()
endif()
file(MAKE_DIRECTORY "${OUTPUT_DIR}")
# The build's own settings: the checked-in Doxyfile, with the output moved into the build.
file(WRITE "${OUTPUT_DIR}/Doxyfile" "@INCLUDE = ${SOURCE_DIR}/docs/Doxyfile\nOUTPUT_DIRECTORY = ${OUTPUT_DIR}\n")
execute_process(COMMAND "${doxygen}" "${OUTPUT_DIR}/Doxyfile" WORKING_DIRECTORY "${SOURCE_DIR}"
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT status EQUAL 0 OR NOT err STREQUAL "")
  message(FATAL_ERROR "doxygen failed (status ${status}); every public declaration in include/trainrt/ needs a doc "
                      "comment:\n${err}${out}")
endif()
message("docs.doxygen: no warnings; the reference is ${OUTPUT_DIR}/html/index.html")
