# libFuzzer targets, built with clang++ (-fsanitize=fuzzer,address) even when
# the main build uses g++: each target is a custom command, not a CMake
# target of the main toolchain. Nothing is compiled by the normal build; the
# ctest test "<name>_build" (label fuzz, a fixture; or the custom target
# build_<name>) builds it before
# "<name>_run" fuzzes for a bounded time.
#
# ssi_fuzz_target(NAME SOURCES <files> [INCLUDES <dirs>] [LIBS <-lfoo>]
#                 [SEEDS <files or dirs>] [SECONDS n])
include_guard(GLOBAL)

find_program(SSI_FUZZ_CXX NAMES clang++-14 clang++)

function(ssi_fuzz_target name)
  cmake_parse_arguments(F "" "SECONDS" "SOURCES;INCLUDES;LIBS;SEEDS" ${ARGN})
  if(NOT SSI_FUZZ_CXX)
    message(STATUS "fuzz: no clang++, ${name} is not registered")
    return()
  endif()
  if(NOT F_SECONDS)
    set(F_SECONDS 15)
  endif()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${name})
  set(inc_flags "")
  foreach(dir ${F_INCLUDES})
    list(APPEND inc_flags -I${dir})
  endforeach()
  add_custom_command(OUTPUT ${out}
    COMMAND ${SSI_FUZZ_CXX} -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined -Wall -Wextra -Werror
            ${inc_flags} ${F_SOURCES} ${F_LIBS} -o ${out}
    DEPENDS ${F_SOURCES}
    COMMENT "fuzz: building ${name} with ${SSI_FUZZ_CXX}"
    VERBATIM)
  add_custom_target(build_${name} DEPENDS ${out})

  add_test(NAME ${name}_build
    COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target build_${name})
  set_tests_properties(${name}_build PROPERTIES LABELS fuzz FIXTURES_SETUP ${name}_bin TIMEOUT 300)

  # A fresh corpus each run, seeded from SEEDS; crashes land in the build dir.
  set(corpus ${CMAKE_CURRENT_BINARY_DIR}/${name}_corpus)
  add_test(NAME ${name}_run
    COMMAND sh -c "rm -rf '${corpus}' && mkdir -p '${corpus}' && for s in \"$@\"; do [ -e \"$s\" ] && cp -r \"$s\" '${corpus}/' || true; done; exec '${out}' -max_total_time=${F_SECONDS} -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix='${CMAKE_CURRENT_BINARY_DIR}/${name}-' '${corpus}'"
            sh ${F_SEEDS})
  set_tests_properties(${name}_run PROPERTIES LABELS fuzz FIXTURES_REQUIRED ${name}_bin
    TIMEOUT ${F_SECONDS}0)
endfunction()
