# cmake -DSCRIPT=<cmake/TrainrtSourceIdentity.cmake> -DWORK=<scratch folder> -P source_identity_test.cmake
#
# The compiler identity (the program cache's guard against stale Programs) changes when a
# source's contents change, and only then; an unchanged digest leaves the header untouched,
# so a rebuild recompiles nothing; a missing source is an error that names it.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/src/passes")
file(WRITE "${WORK}/src/passes/a.cpp" "int a() { return 1; }\n")
file(WRITE "${WORK}/src/passes/b.h" "#pragma once\n")
file(WRITE "${WORK}/list.txt" "passes/b.h\npasses/a.cpp\n")
set(header "${WORK}/identity.h")

function(identity out)
  execute_process(COMMAND ${CMAKE_COMMAND} -DINPUTS=${WORK}/list.txt -DROOT=${WORK}/src -DOUT=${header} -P ${SCRIPT}
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the identity script failed: ${err}")
  endif()
  file(STRINGS "${header}" line REGEX "kCompilerIdentity")
  if(NOT line MATCHES "\"([0-9a-f]+)\"")
    message(FATAL_ERROR "no identity in ${header}: ${line}")
  endif()
  string(LENGTH "${CMAKE_MATCH_1}" length)
  if(NOT length EQUAL 64)
    message(FATAL_ERROR "the identity is not a SHA-256: ${CMAKE_MATCH_1}")
  endif()
  set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

identity(first)
file(TIMESTAMP "${header}" stamp_first "%s")
execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 1.1)
identity(again)
file(TIMESTAMP "${header}" stamp_again "%s")
if(NOT first STREQUAL again)
  message(FATAL_ERROR "the identity changed with no source changed: ${first} then ${again}")
endif()
if(NOT stamp_first STREQUAL stamp_again)
  message(FATAL_ERROR "an unchanged identity rewrote the header (a rebuild would recompile)")
endif()

file(WRITE "${WORK}/src/passes/a.cpp" "int a() { return 2; }\n")
identity(edited)
if(edited STREQUAL first)
  message(FATAL_ERROR "editing a pass did not change the identity")
endif()

# The same bytes under another name are another compiler.
file(RENAME "${WORK}/src/passes/b.h" "${WORK}/src/passes/c.h")
file(WRITE "${WORK}/list.txt" "passes/c.h\npasses/a.cpp\n")
identity(renamed)
if(renamed STREQUAL edited)
  message(FATAL_ERROR "renaming a source did not change the identity")
endif()

file(WRITE "${WORK}/list.txt" "passes/c.h\npasses/missing.cpp\n")
execute_process(COMMAND ${CMAKE_COMMAND} -DINPUTS=${WORK}/list.txt -DROOT=${WORK}/src -DOUT=${header} -P ${SCRIPT}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "missing.cpp")
  message(FATAL_ERROR "a missing source was not an error naming it (rc ${rc}): ${err}")
endif()
file(REMOVE_RECURSE "${WORK}")
message(STATUS "compiler identity: stable, changes with contents and names, missing sources refused")
