# Production code links no fakes: every target defined outside tests/ and
# benchmarks/ (the ssi binary, ssi-linkemu, the ssi_* libraries) is checked
# at configure time, with everything it links directly or transitively. A
# target whose name says "testing" or "fake" (ssi_<module>_testing, from a
# module's testing/ folder) in that closure stops the configure. The walk is
# ssi_link_closure (cmake/SsiTarget.cmake).

# Every buildsystem target defined in `dir` or below, outside tests/ and
# benchmarks/.
function(ssi_production_targets out dir)
  set(result "")
  if(NOT dir MATCHES "^${PROJECT_SOURCE_DIR}/(tests|benchmarks)(/|$)")
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    list(APPEND result ${targets})
  endif()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    ssi_production_targets(more ${sub})
    list(APPEND result ${more})
  endforeach()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(ssi_is_testing_name out name)
  string(TOLOWER "${name}" lower)
  if(lower MATCHES "testing|fake")
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

# Fails the configure if a production target links a testing target.
function(ssi_check_no_testing_links)
  ssi_production_targets(targets ${PROJECT_SOURCE_DIR})
  set(bad "")
  foreach(root IN LISTS targets)
    ssi_is_testing_name(is_fake ${root})
    get_target_property(type ${root} TYPE)
    if(is_fake OR type STREQUAL "UTILITY")
      continue()
    endif()
    ssi_link_closure(linked ${root})
    foreach(t IN LISTS linked)
      ssi_is_testing_name(is_fake ${t})
      if(is_fake)
        list(APPEND bad "${root} links ${t}")
      endif()
    endforeach()
  endforeach()
  if(bad)
    list(JOIN bad "\n  " lines)
    message(FATAL_ERROR "production targets link testing libraries (fakes are for tests only):\n  ${lines}")
  endif()
  list(LENGTH targets n)
  message(STATUS "ssi: no production target links a testing library (${n} targets checked)")
endfunction()
