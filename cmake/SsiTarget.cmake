# Helpers that give every ssi target the same warnings and layout.

function(ssi_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(SSI_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# ssi_module(NAME SOURCES... [DEPS ...]): library ssi_<NAME> with public
# headers in include/ and fakes for other modules' tests in testing/.
function(ssi_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(ssi_${name} STATIC ${M_SOURCES})
  target_include_directories(ssi_${name} PUBLIC
    ${CMAKE_CURRENT_SOURCE_DIR}/include
    ${CMAKE_CURRENT_SOURCE_DIR}/testing)
  target_include_directories(ssi_${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(ssi_${name} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  ssi_warnings(ssi_${name})
endfunction()

# ssi_test(NAME SOURCES... DEPS ... [LABELS ...]): a gtest binary registered with ctest.
function(ssi_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest_main)
  ssi_warnings(${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
endfunction()
