# Helpers that give every ffc target the same flags, warnings and include root.

set(FFC_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
                      -Woverloaded-virtual -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough)
if(FFC_WERROR)
  list(APPEND FFC_WARNING_FLAGS -Werror)
endif()

# Applies ffc's compile settings to a target of our own code (not to third-party code).
function(ffc_configure_target target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${FFC_WARNING_FLAGS}>)
  target_compile_definitions(${target} PRIVATE OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
endfunction()

# ffc_add_library(<name> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# One static library per layer, named ffc_<layer>.
function(ffc_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  ffc_configure_target(${name})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# The git revision is read at build time (not configure time) so `ffc --version` names the
# commit that was actually built.
set(FFC_GENERATED_DIR ${PROJECT_BINARY_DIR}/generated)
execute_process(COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                        -DOUTPUT=${FFC_GENERATED_DIR}/git_revision.cpp
                        -P ${PROJECT_SOURCE_DIR}/cmake/GitRevision.cmake)
add_custom_target(ffc_git_revision
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DOUTPUT=${FFC_GENERATED_DIR}/git_revision.cpp -P ${PROJECT_SOURCE_DIR}/cmake/GitRevision.cmake
  BYPRODUCTS ${FFC_GENERATED_DIR}/git_revision.cpp
  COMMENT "" VERBATIM)

