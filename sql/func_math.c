/* func_math.c -- placeholder until the family lands. */
#include "sql_int.h"

const sql_func sql__func_math[] = {
    {0},
};
